//! A small run of every scenario: it finishes and reports every ratio. It
//! asserts nothing about speed; `docs/benchmarks.md` holds the figures.

use std::process::Command;

#[test]
fn every_scenario_runs_and_reports_its_ratio() {
    let dir = tempfile::tempdir().expect("tempdir");
    let report = dir.path().join("report.json");
    let output = Command::new(env!("CARGO_BIN_EXE_anima-bench"))
        .args(["all", "--quick", "--duration", "1", "--clients", "2"])
        .args(["--page-items", "500", "--report"])
        .arg(&report)
        .output()
        .expect("run anima-bench");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "anima-bench failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(stdout.matches("ratio:").count(), 6, "{stdout}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).expect("report")).expect("json");
    let scenarios: Vec<&str> = report["scenarios"]
        .as_array()
        .expect("scenarios")
        .iter()
        .filter_map(|s| s["scenario"].as_str())
        .collect();
    assert_eq!(
        scenarios,
        [
            "write",
            "read",
            "auth",
            "revocation",
            "page-depth",
            "footprint",
            "ai"
        ]
    );
    for scenario in report["scenarios"].as_array().expect("scenarios") {
        // Revocation reports a latency, no ratio.
        if scenario["scenario"] != "revocation" {
            assert!(scenario["ratio"]["value"].as_f64().is_some(), "{scenario}");
        }
        for stats in scenario["stats"].as_array().expect("stats") {
            assert!(stats["operations"].as_u64() > Some(0), "{stats}");
        }
    }
}

/// The mail scenario needs Cyrus and root, so it runs apart from `all`.
#[test]
fn mail_scenario_reports_its_rate() {
    if !anima_mail::testing::CyrusServer::available() {
        assert!(
            std::env::var("ANIMA_TEST_REQUIRE_MAIL_SERVER").as_deref() != Ok("1"),
            "Cyrus is required here but not available"
        );
        eprintln!("Cyrus not installed or not root; skipped");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let output = Command::new(env!("CARGO_BIN_EXE_anima-bench"))
        .args(["mail", "--quick", "--backend", "sqlite", "--report"])
        .arg(dir.path().join("mail.json"))
        .output()
        .expect("run anima-bench");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "anima-bench mail failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("mails routed per second"), "{stdout}");
}
