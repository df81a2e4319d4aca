"""Pure chart builders: contract-shaped DataFrames in, plotly Figures out, one module per page.

No streamlit and no SQL here, so every chart can be unit-tested on small frames and reused outside
the app. Inputs are the store's tables as documented in docs/ARCHITECTURE.md (``metrics``,
``languages``, ``items``, ``projections`` joined with ``items``). Every builder copes with empty
frames and NaN values by drawing an explanatory empty figure or leaving gaps, never by raising.

Shared by the pages: ``theme`` (palettes, font, template), ``languages`` (order, names and colours
of languages), ``transforms`` (value views, cells, component pairs), ``common`` (formats, hover,
empty figure, CI band, layer names) and ``point_raster`` (points drawn as an image). One module per
page: ``overview``, ``heatmap``, ``layer_curves``, ``compare``, ``projection``, ``findings``,
``recording``. The package imports none of them, and none imports torch: a page imports the
modules it draws with.
"""
