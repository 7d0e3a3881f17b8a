"""Running searches: the engine (engine.py: a config in, an Outcome out, told through a
View), the terminal's view and exit status (terminal.py), several worker processes on
one study on this host (workers.py), and each process's runtime: threads, allocator,
device (runtime.py). Import the modules themselves: this file imports nothing."""
