"""The release demo (spec/platform.md §7): three traces, four workflows, one report."""
