//! Helpers shared by the tutorial ports: Python's time formats and booleans, and post 001's
//! jobs.
#![allow(dead_code)]

use std::time::{SystemTime, UNIX_EPOCH};

/// (year, month, day, hour, minute, second, microsecond), UTC.
fn now_utc() -> (i64, u32, u32, u64, u64, u64, u32) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs();
    let days = (secs / 86_400) as i64;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    let t = secs % 86_400;
    (
        year,
        month,
        day,
        t / 3600,
        t / 60 % 60,
        t % 60,
        now.subsec_micros(),
    )
}

/// `%H:%M:%S`, as logging's `datefmt` in the tutorials (UTC here; Python uses local time).
pub(crate) fn hms() -> String {
    let (_, _, _, h, m, s, _) = now_utc();
    format!("{h:02}:{m:02}:{s:02}")
}

/// `str(datetime.now())`: `2021-09-13 15:41:09.901218` (UTC here).
pub(crate) fn datetime() -> String {
    let (y, mo, d, h, m, s, us) = now_utc();
    format!("{y}-{mo:02}-{d:02} {h:02}:{m:02}:{s:02}.{us:06}")
}

/// Python's spelling of a bool.
pub(crate) fn py_bool(b: bool) -> &'static str {
    if b { "True" } else { "False" }
}

/// `logging.info` with the tutorials' format `%(asctime)s: %(message)s`.
pub(crate) fn log_info(message: &str) {
    eprintln!("{}: {message}", hms());
}

/// `[('첫 번째', 333333283333335000000), ...]`, as Python prints a list of (str, int) tuples.
pub(crate) fn python_pairs(pairs: &[(String, u128)]) -> String {
    let items: Vec<String> = pairs.iter().map(|(s, n)| format!("('{s}', {n})")).collect();
    format!("[{}]", items.join(", "))
}

/// Post 001's four jobs: `[('첫 번째', 10**7), ('두 번째', 10**7), ...]`.
pub(crate) fn post001_jobs() -> Vec<(String, u128)> {
    ["첫 번째", "두 번째", "세 번째", "네 번째"]
        .into_iter()
        .map(|idx| (idx.to_string(), 10u128.pow(7)))
        .collect()
}

/// Post 001's task: prints its PID, then returns `(idx, sum(i**2 for i in range(count)))`.
/// The sum is 333333283333335000000 for 10**7, beyond u64: u128 here, as Python's big int.
pub(crate) fn post001_task(idx: String, count: u128) -> (String, u128) {
    println!("PID : {}", std::process::id());
    // black_box: without it LLVM replaces the loop by the closed form, and there is no work
    // left to parallelise.
    let logic = (0..count).map(|i| std::hint::black_box(i) * i).sum();
    (idx, logic)
}
