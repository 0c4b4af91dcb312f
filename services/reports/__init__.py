"""The weekly stocktake and its CSV, XLSX and HTML writers."""
