"""CSV import: long curves, W&B and TensorBoard exports, one-row-per-model tables.

`parse_file` validates a file into canonical frames without writing anything;
`import_files` writes validated files into a project in one transaction.
See docs/csv-formats.md for the accepted layouts, aliases and rules.
"""

from __future__ import annotations

from store.importers.detect import FORMATS
from store.importers.parse import ParsedFile, parse_file
from store.importers.write import FileReport, ImportReport, import_files

__all__ = ["FORMATS", "FileReport", "ImportReport", "ParsedFile", "import_files", "parse_file"]
