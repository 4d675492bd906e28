"""The bottom layer, which every other package may import: files written atomically (a crash leaves the old file
or folder, or nothing), folders built once under a file lock, and the safe readers (safetensors, JSON; never
pickle)."""
