"""Dataset files of an export: where they may be written and what records them.

- `folder`: the export root and the folders under it that WriteExport may write (no `..`, no
  symbolic links, no file the exporter did not write), with atomic file writes;
- `manifest`: manifest.json, the record of one export (scope, config, experts, counts, judge
  statistics, skipped battles, file checksums), which also marks the files as the exporter's;
- `records`: the on-disk table that deduplicates an export's records by instruction while the
  battles stream past, so no export holds a round's records in memory.

The exporter stage (warriorcoder/stages/exporter.py) drives them; docs/exports.md describes the
result.
"""
