"""Studies built on the library: the demo, template sensitivity, and the HTML/Markdown run report."""
