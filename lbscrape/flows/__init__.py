"""What each command does, composing the three sides; pipeline.py is the order of a
run's stages."""
