"""Files softprompt reads and writes: prompt folders, training checkpoints, PEFT adapters (all written through
``softprompt.io.atomic``)."""
