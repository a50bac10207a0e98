use std::process::Command;

fn cachegate(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_cachegate"))
        .args(args)
        .env_remove("CACHEGATE_CONFIG")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn write_config(text: &str) -> (tempdir::Dir, String) {
    let dir = tempdir::Dir::new();
    let path = dir.path.join("proxy.toml");
    std::fs::write(&path, text).unwrap();
    let p = path.to_string_lossy().into_owned();
    (dir, p)
}

mod tempdir {
    pub struct Dir {
        pub path: std::path::PathBuf,
    }
    impl Dir {
        pub fn new() -> Dir {
            use std::sync::atomic::{AtomicU64, Ordering};
            static N: AtomicU64 = AtomicU64::new(0);
            let path = std::env::temp_dir().join(format!(
                "cachegate-test-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::SeqCst)
            ));
            std::fs::create_dir_all(&path).unwrap();
            Dir { path }
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

#[test]
fn check_prints_the_route_table_of_the_shipped_config() {
    let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/proxy.toml");
    let (code, stdout, stderr) = cachegate(&["check", "--config", shipped]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("/api/faculty/{id}/"), "{stdout}");
    assert!(stdout.contains("faculty:{id}"), "{stdout}");
}

#[test]
fn bad_configs_are_refused_with_file_line_and_key() {
    let cases = [
        ("[cache]\ndefault_ttl = \"5 minutes\"\n", "default_ttl", ":2:"),
        ("[cache]\nmax_memry = \"1MiB\"\n", "max_memry", ":2:"),
        (
            "[upstream]\nurl = \"http://127.0.0.1:8000\"\n[[route]]\npath = \"/a/{id}/\"\ntags = [\"a:{x}\"]\n",
            "{x}",
            ":5:",
        ),
        (
            "[upstream]\nurl = \"http://127.0.0.1:8000\"\n[[route]]\npath = \"/a/{id}/\"\n[[route]]\npath = \"/a/{pk}/\"\n",
            "can never match",
            ":6:",
        ),
    ];
    for (text, needle, line) in cases {
        let (_dir, path) = write_config(text);
        let (code, _stdout, stderr) = cachegate(&["check", "--config", &path]);
        assert_eq!(code, 64, "{text}\n{stderr}");
        assert!(stderr.contains(needle), "{needle} not in {stderr}");
        assert!(
            stderr.contains(&format!("proxy.toml{line}")),
            "{line} not in {stderr}"
        );
    }
}

#[test]
fn a_missing_config_file_is_named() {
    let (code, _stdout, stderr) = cachegate(&["check", "--config", "/nonexistent/proxy.toml"]);
    assert_eq!(code, 64);
    assert!(stderr.contains("/nonexistent/proxy.toml"), "{stderr}");
}

#[test]
fn version_and_help() {
    let (code, stdout, _) = cachegate(&["--version"]);
    assert_eq!(code, 0);
    assert!(stdout.contains(env!("CARGO_PKG_VERSION")));
    let (code, stdout, _) = cachegate(&["--help"]);
    assert_eq!(code, 0);
    assert!(stdout.contains("serve") && stdout.contains("check"));
}
