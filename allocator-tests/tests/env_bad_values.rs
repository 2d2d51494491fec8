//! MEMPROFILERATE and MEMPROFILE: bad values warn once and lose nothing.
use std::process::Command;

fn probe(envs: &[(&str, &str)], code: &str) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_env_probe"))
        .arg(code)
        .env_remove("MEMPROFILERATE")
        .env_remove("MEMPROFILE")
        .envs(envs.iter().copied())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_rates_warn_once_and_keep_the_default() {
    for bad in ["abc", "-5", "99999999999999999999999", ""] {
        let (code, out, err) = probe(&[("MEMPROFILERATE", bad)], "0");
        assert_eq!(code, 0, "{bad:?}");
        assert_eq!(out.trim(), "rate 524288", "{bad:?}");
        assert_eq!(err.matches("MEMPROFILERATE").count(), 1, "{bad:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{bad:?}: {err}");
    }
}

#[test]
fn good_rates_apply_silently() {
    for (good, want) in [("1", "rate 1"), ("0", "rate 0"), ("4096", "rate 4096")] {
        let (code, out, err) = probe(&[("MEMPROFILERATE", good)], "0");
        assert_eq!((code, out.trim(), err.as_str()), (0, want, ""));
    }
}

#[test]
fn unwritable_memprofile_gives_one_message_and_keeps_the_exit_status() {
    // Tests run as root, so a read-only directory would still be writable:
    // a path under a regular file (ENOTDIR) and a missing directory always fail.
    let file = std::env::temp_dir().join(format!("memprof-notadir-{}", std::process::id()));
    std::fs::write(&file, b"x").unwrap();
    for path in [
        file.join("heap.pb.gz"),
        "/nonexistent-dir/heap.pb.gz".into(),
    ] {
        let (code, _, err) = probe(&[("MEMPROFILE", path.to_str().unwrap())], "3");
        assert_eq!(code, 3, "exit status must be unchanged");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains("cannot write the heap profile"), "{err}");
    }
}

#[test]
fn memprofile_placeholders_name_the_file() {
    let dir = std::env::temp_dir().join(format!("memprof-env-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pattern = dir.join("heap-{bin}-{pid}.pb.gz");
    let (code, _, err) = probe(
        &[
            ("MEMPROFILE", pattern.to_str().unwrap()),
            ("MEMPROFILERATE", "1"),
        ],
        "0",
    );
    assert_eq!(code, 0, "{err}");
    let written: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(written.len(), 1, "{written:?}");
    let name = written[0]
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert!(
        name.starts_with("heap-env_probe-") && name.ends_with(".pb.gz"),
        "{name}"
    );
    let d = allocator_tests::go_raw(&written[0]);
    assert_eq!(d.period, 1);
    assert!(!d.samples.is_empty());
}
