"""``vn.show``: every figure and widget vitnotes draws; nothing below this package draws. Maps and heads
(``layer_strip``, ``head_grid``, ``overlay``), the studies' figures, the pickers (they work in the static
book), the explorer and the offline HTML export, and the zoo's training figures (``training_plot``).
How a figure reads on the book's page: ``vitnotes.show.page``. Introduced in notebook 00."""

from .explorer import (
    Explorer,
    explore,
    image_from_bytes,
    map_numbers,
    top_classes,
)  # fmt: skip
from .export import (
    embed_script,
    find_embed_js,
    save_html,
)  # fmt: skip
from .figures import (
    before_after,
    display_image,
    head_grid,
    head_heatmap,
    layer_strip,
    metric_by_layer,
    overlay,
    relative_colorbar,
    relative_norm,
    relative_to_uniform,
    upsample,
)  # fmt: skip
from .heads import (
    attention_matrix,
    distance_dots,
    following_plot,
    position_similarity_plot,
)  # fmt: skip
from .representations import (
    cka_heatmap,
    readability_plot,
)  # fmt: skip
from .studies import (
    agreement_heatmap,
    cascade_panel,
    cascade_plot,
    deletion_plot,
    group_distributions,
    map_panel,
    show_regions,
    transplant_plot,
)  # fmt: skip
from .training import (
    log_change,
    recipe_table,
    training_plot,
    zoo_table,
)  # fmt: skip
from .trust import (
    curve_plot,
    interval_plot,
    metric_scatter,
    shared_maps,
)  # fmt: skip
from .widgets import (
    head_picker,
    query_picker,
    render_png,
    state_bytes,
)  # fmt: skip

__all__ = [
    "before_after",
    "display_image",
    "head_grid",
    "head_heatmap",
    "layer_strip",
    "metric_by_layer",
    "overlay",
    "relative_colorbar",
    "relative_norm",
    "relative_to_uniform",
    "upsample",
    "position_similarity_plot",
    "distance_dots",
    "attention_matrix",
    "following_plot",
    "readability_plot",
    "cka_heatmap",
    "agreement_heatmap",
    "cascade_panel",
    "cascade_plot",
    "deletion_plot",
    "group_distributions",
    "map_panel",
    "show_regions",
    "transplant_plot",
    "log_change",
    "recipe_table",
    "training_plot",
    "zoo_table",
    "curve_plot",
    "interval_plot",
    "metric_scatter",
    "shared_maps",
    "head_picker",
    "query_picker",
    "render_png",
    "state_bytes",
    "Explorer",
    "explore",
    "image_from_bytes",
    "map_numbers",
    "top_classes",
    "embed_script",
    "find_embed_js",
    "save_html",
]
