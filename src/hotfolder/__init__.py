"""hotfolder: ordinary folders become crash-safe document-conversion services."""

__version__ = "0.1.0"
