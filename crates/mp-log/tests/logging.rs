//! CPython's `_TestLogging` (Lib/test/_test_multiprocessing.py): `test_enable_logging` and
//! `test_level`, with mp's logger: the level set on `get_logger()` is the level children
//! forward at (Python's children inherit the logger's level). One test function runs the
//! start methods in turn, since the logger's level is per process.

use mp_spawn::StartMethod;
use mp_spawn::testing::ctx;
use tracing::Level;
use tracing::level_filters::LevelFilter;

/// `_test_level`: the level this child logs at, as Python's child sends
/// `logger.getEffectiveLevel()`.
fn child_level() -> String {
    LevelFilter::current().to_string()
}

#[test]
fn test_enable_logging_and_test_level() {
    // test_enable_logging
    let logger = mp_log::log_to_stderr(Level::WARN);
    logger.set_level(Level::ERROR);
    assert!(!tracing::enabled!(target: mp_log::TARGET, Level::DEBUG));
    assert!(!tracing::enabled!(target: mp_log::TARGET, Level::INFO));
    assert!(tracing::enabled!(target: mp_log::TARGET, Level::ERROR));
    logger.debug("this will not be printed");
    logger.info("nor will this");
    // test_level
    for m in [
        StartMethod::Fork,
        StartMethod::Spawn,
        StartMethod::Forkserver,
    ] {
        for level in [LevelFilter::WARN, LevelFilter::DEBUG] {
            mp_log::get_logger().set_level(level);
            assert_eq!(mp_log::get_logger().level(), level);
            let mut p = ctx(m).process(child_level, ());
            p.start().unwrap();
            assert_eq!(p.join().unwrap(), level.to_string(), "{m:?}");
        }
    }
    mp_log::get_logger().set_level(LevelFilter::OFF);
    let mut p = ctx(StartMethod::Spawn).process(child_level, ());
    p.start().unwrap();
    // Nothing forwarded, and a spawned child has no subscriber of its own.
    assert_eq!(p.join().unwrap(), LevelFilter::OFF.to_string());
}
