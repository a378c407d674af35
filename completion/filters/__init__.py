"""Post-processing filters, one module per filter; `completion.postprocess.FILTERS` fixes
their order. `layout` (lines, indentation) and `splice` (the completion parsed in a window of
its document) are the helpers they share."""
