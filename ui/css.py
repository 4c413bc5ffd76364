"""The page's CSS: sharp results, and the phone layout (390 px) of the strip, the timeline and Jobs.

Plain strings (no Gradio import), so app.py can hand them to `launch(css=...)`.
"""


def _columns(table: str, columns, rule: str) -> str:
    """A rule for columns (0-based) of the Dataframe with class `table`: header cells, the header table's
    hidden sizing row, and body cells (divs named cell-<row>-<column>)."""
    return ",".join(f'.{table} th[data-testid="header-{c}"],.{table} table td:nth-child({c + 1}),'
                    f'.{table} [data-testid^="cell-"][data-testid$="-{c}"]' for c in columns) + "{" + rule + "}"


def _jobs_columns(columns, rule: str) -> str:
    return _columns("genl-jobs", columns, rule)


def _width(px: int) -> str:
    return f"width:{px}px!important;min-width:{px}px!important;max-width:{px}px!important;flex:0 0 {px}px!important"


# Phone width: Jobs shows status, result (thumbnail), created and prompt (columns of ui/tab_jobs.py HEADERS);
# the other columns are hidden and the shown ones narrowed (Gradio sets desktop widths inline), no side-scroll.
JOBS_PHONE_CSS = (_jobs_columns((0, 1, 4, 5, 8), "display:none") + _jobs_columns((2,), _width(62))
                  + _jobs_columns((3,), _width(70)) + _jobs_columns((6,), _width(82))
                  + _jobs_columns((7,), "width:auto!important;min-width:0!important;max-width:none!important;"
                                        "flex:1 1 auto!important")
                  + ".genl-jobs table.header-table{width:100%!important}")
# Phone width: the timeline's from/to columns stay narrow and their headers on one line; prompts get the rest.
TIMELINE_PHONE_CSS = (_columns("genl-timeline", (0, 1), _width(48)) + _columns("genl-timeline", (3,), _width(86))
                      + _columns("genl-timeline", (2,), "width:auto!important;min-width:0!important;"
                                 "max-width:none!important;flex:1 1 auto!important")
                      + ".genl-timeline th span{white-space:nowrap!important;overflow-wrap:normal!important;"
                      "word-break:keep-all!important} .genl-timeline table.header-table{width:100%!important}")
CSS = (".genl-strip svg{border:1px solid #ddd;border-radius:6px} "
       ".genl-missing{border-left:4px solid #e67e22;padding-left:8px} "
       # results at real size, scaled sharply (the demo model draws 128x128), never stretched blurry
       ".genl-result video,.genl-job-video video,.genl-preview img{image-rendering:pixelated;"
       "object-fit:contain;max-height:520px} "
       # phone width: the timeline stays usable, the strip readable, Jobs keeps its key columns
       "@media (max-width:480px){"
       ".gradio-container{padding:4px!important} "
       ".genl-strip{overflow-x:auto} .genl-strip svg{min-width:620px;height:auto} "
       "table td{white-space:normal;overflow-wrap:anywhere;font-size:13px} "
       "table th{white-space:nowrap;word-break:keep-all;overflow-wrap:normal;font-size:13px} "
       + JOBS_PHONE_CSS + TIMELINE_PHONE_CSS + "}")
