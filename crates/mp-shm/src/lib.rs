//! mp-shm: not built yet (see the open issue). Part of mp, Python's multiprocessing for Rust.
