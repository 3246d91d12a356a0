use std::time::{Duration, UNIX_EPOCH};

use super::*;

fn record() -> Record {
    Record {
        level: Some(Level::INFO),
        process_name: "Process-1".into(),
        pid: 42,
        name: "app".into(),
        message: "hello".into(),
        fields: String::new(),
    }
}

/// 2023-11-14 22:13:20.123 UTC.
fn at() -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(1_700_000_000_123)
}

#[test]
fn pythons_default_format() {
    assert_eq!(
        PythonFormat::default().format(&record(), at()),
        "[INFO/Process-1] hello"
    );
    let mut r = record();
    r.level = Some(Level::WARN);
    r.fields = "n=3".into();
    assert_eq!(
        PythonFormat::new("%(levelname)s %(process)d %(name)s 100%% %(message)s %(bad)s")
            .format(&r, at()),
        "WARNING 42 app 100% hello n=3 %(bad)s"
    );
    assert_eq!(
        PythonFormat::new("%(asctime)s: %(message)s")
            .utc()
            .format(&record(), at()),
        "2023-11-14 22:13:20,123: hello"
    );
    assert_eq!(
        PythonFormat::new("%(asctime)s: %(message)s")
            .datefmt("%H:%M:%S")
            .utc()
            .format(&record(), at()),
        "22:13:20: hello"
    );
}

/// `asctime` in a zone given explicitly, read as `TZ` is: fixed offsets, a rule with summer
/// time, `strftime`'s `%z` and `%Z`; a zone that is none is UTC.
#[test]
fn asctime_in_a_given_zone() {
    let asctime = |tz: &str, datefmt: Option<&str>, at: SystemTime| {
        let mut format = PythonFormat::new("%(asctime)s").time_zone(tz);
        if let Some(datefmt) = datefmt {
            format = format.datefmt(datefmt);
        }
        format.format(&record(), at)
    };
    // POSIX: `UTC-3` is three hours east of UTC.
    assert_eq!(asctime("UTC-3", None, at()), "2023-11-15 01:13:20,123");
    assert_eq!(asctime(":UTC+5:30", None, at()), "2023-11-14 16:43:20,123");
    // New York's rule: EST in November, EDT in July (2023-07-01 12:00:00 UTC).
    let rule = "EST5EDT,M3.2.0,M11.1.0";
    let july = UNIX_EPOCH + Duration::from_secs(1_688_212_800);
    assert_eq!(
        asctime(rule, Some("%Y-%m-%d %H:%M:%S %z %Z"), at()),
        "2023-11-14 17:13:20 -0500 EST"
    );
    assert_eq!(asctime(rule, Some("%H:%M %z %Z"), july), "08:00 -0400 EDT");
    // A directive jiff does not know is written as it is, as glibc's strftime does.
    assert_eq!(asctime("UTC", Some("%H %! %%"), at()), "22 %! %");
    // Not a zone: UTC, as glibc.
    assert_eq!(
        asctime("No/Such_Zone", None, at()),
        "2023-11-14 22:13:20,123"
    );
    assert_eq!(asctime("", None, at()), "2023-11-14 22:13:20,123");
    // A zone of the system's database, where it has one.
    if std::path::Path::new("/usr/share/zoneinfo/Asia/Kolkata").exists() {
        assert_eq!(
            asctime("Asia/Kolkata", Some("%H:%M %z"), at()),
            "03:43 +0530"
        );
        assert_eq!(
            asctime("/usr/share/zoneinfo/Asia/Kolkata", Some("%H:%M"), at()),
            "03:43"
        );
    }
}

/// Without a zone given, `TZ` decides, as in Python: the test runs itself again in a child
/// process with `TZ=UTC-3`, which checks what a format made there prints.
#[test]
fn asctime_follows_tz() {
    const INNER: &str = "MP_LOG_TEST_ASCTIME_FOLLOWS_TZ";
    if std::env::var_os(INNER).is_some() {
        let format = PythonFormat::new("%(asctime)s %(message)s");
        assert_eq!(
            format.format(&record(), at()),
            "2023-11-15 01:13:20,123 hello"
        );
        let format = format.datefmt("%H:%M:%S%z");
        assert_eq!(format.format(&record(), at()), "01:13:20+0300 hello");
        return;
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "format::test::asctime_follows_tz", "--nocapture"])
        .env(INNER, "1")
        .env("TZ", "UTC-3")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
