"""Hard prompts: the template syntax (a real parser), templates, and verbalizers (label words)."""
