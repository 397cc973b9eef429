"""Every figure and widget vitnotes draws; nothing below this package draws."""
