"""The pipeline: what one command does, end to end — a run (train, then evaluate), a sweep of runs on a
launcher, an audit (its sweep, then its report). It sits between the library's layers (data … stats / analysis)
and the CLI, which only parses arguments, calls one function here and prints what it returns."""
