"""The battle viewer: the arena's battles, judges and winners in a browser, read-only.

`warriorcoder view --run-dir DIR` serves an embedded run's store; the rater service serves the
same pages in distributed mode (WARRIORCODER_VIEWER_PORT). Pages are rendered on the server
(viewer.server) from the store (viewer.data, viewer.filters, viewer.exports); model-written
text is escaped and its code highlighted on the server (viewer.highlight). The CSS and the
small live-refresh script ship in `static/`, the templates in `templates/`. See docs/viewer.md.
"""
