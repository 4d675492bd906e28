"""Files softprompt reads and writes: prompt folders, training checkpoints, PEFT adapters, the built-in
model and data assets, and the one atomic-write helper (``atomic``) everything writes through."""
