//! Command lines a newcomer tries: a message too long for one LSP message (client and
//! mine), and the benchmark's subcommands and their help.

mod support;

use std::process::{Command, Output};

use support::{client, miner, server};

/// Runs `bin` with `args` to its end (it must not wait on anything) and returns its output.
fn run(bin: &str, args: &[&str]) -> Output {
    Command::new(bin)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {bin}: {e}"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn client_refuses_a_message_too_long_before_connecting() {
    // Nothing listens on the discard port: a client that tried to connect would wait for
    // its connect-ack until its epoch limit, then print `Disconnected`.
    let long = "a".repeat(924);
    let out = run(
        env!("CARGO_BIN_EXE_client"),
        &["127.0.0.1:9", &long, "1000000000"],
    );
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert_eq!(text(&out.stdout), "", "nothing on stdout");
    let stderr = text(&out.stderr);
    assert!(stderr.contains("too long (924 bytes)"), "{stderr}");
    assert!(stderr.contains("at most 1000 bytes"), "{stderr}");
    assert!(
        stderr.contains("(10 digits) the longest message is 923 bytes"),
        "{stderr}"
    );
}

#[test]
fn mine_refuses_a_message_too_long_without_a_timing_line() {
    let long = "b".repeat(938);
    let out = run(env!("CARGO_BIN_EXE_mine"), &[&long, "100"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert_eq!(text(&out.stdout), "");
    let stderr = text(&out.stderr);
    assert!(stderr.contains("longest message is 937 bytes"), "{stderr}");
    assert!(!stderr.contains("done in"), "{stderr}");
}

#[test]
fn the_longest_message_is_answered_end_to_end() {
    // 937 plain bytes is the documented limit for nonces up to 100: every job sent to the
    // miners must fit in one LSP message, and the answer must come back.
    let longest = "c".repeat(937);
    let out = run(env!("CARGO_BIN_EXE_mine"), &[&longest, "100", "--quiet"]);
    assert!(out.status.success(), "{out:?}");
    let (lower, upper) = (0, 100);
    let (hash, nonce) = (lower..=upper)
        .map(|n| (bitcoin_core::hash::hash(&longest, n), n))
        .min()
        .expect("a nonce");
    assert_eq!(text(&out.stdout), format!("Result {hash} {nonce}\n"));

    let (_server, addr) = server(&[]);
    let _miner = miner(&addr, &["--threads", "1"]);
    let mut c = client(&addr, &longest, lower, upper);
    let (status, stdout) = c.wait_exit();
    assert!(status.success());
    assert_eq!(stdout, format!("Result {hash} {nonce}"));
}

#[test]
fn bench_has_documented_subcommands() {
    let bench = env!("CARGO_BIN_EXE_bench");
    let help = run(bench, &["--help"]);
    assert!(help.status.success());
    let listing = text(&help.stdout);
    for mode in ["hash", "schedule", "codec", "echo", "e2e"] {
        assert!(
            listing.lines().any(|l| l.trim_start().starts_with(mode)),
            "{mode} missing from:\n{listing}"
        );
    }
    for (mode, flags) in [
        ("hash", &["--seconds"][..]),
        ("schedule", &["--seed", "--jobs-per-miner", "--no-backups"]),
        ("codec", &["--quick"]),
        ("echo", &["--millis", "--clients", "--only", "--runtime"]),
        ("e2e", &["--msg", "--max-nonce", "--miners", "--threads"]),
    ] {
        let out = run(bench, &[mode, "--help"]);
        assert!(out.status.success(), "bench {mode} --help: {out:?}");
        let help = text(&out.stdout);
        for flag in flags {
            assert!(
                help.contains(flag),
                "bench {mode} --help lacks {flag}:\n{help}"
            );
        }
    }
}

#[test]
fn bench_refuses_bad_command_lines_with_usage() {
    let bench = env!("CARGO_BIN_EXE_bench");
    for args in [
        &[][..],
        &["nosuch"],
        &["hash", "--seconds", "0"],
        &["echo", "--only", "nothing"],
        &["e2e", "--miners", "0"],
    ] {
        let out = run(bench, args);
        assert_eq!(out.status.code(), Some(2), "bench {args:?}: {out:?}");
        let stderr = text(&out.stderr);
        assert!(
            stderr.contains("Usage") || stderr.contains("--help"),
            "bench {args:?}: {out:?}"
        );
    }
}
