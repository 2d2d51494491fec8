//! When memprof cannot reserve its sampled-block region (an address-space
//! limit, `ulimit -v`), the test helpers cannot record anything: each must
//! panic saying so, not pass vacuously. Run in the `no_region_probe`
//! process, which sets `RLIMIT_AS` before the reservation.
use allocator_tests::*;
use std::time::Duration;

#[global_allocator]
static A: memprof::Sampled<std::alloc::System> = memprof::Sampled::new(std::alloc::System);

#[test]
fn helpers_panic_when_the_region_cannot_be_reserved() {
    let out = output_within(
        std::process::Command::new(env!("CARGO_BIN_EXE_no_region_probe"))
            .env("MEMPROFILERATE", "0"),
        Duration::from_secs(60),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "probe failed: {stdout}{stderr}");
    for helper in ["measure", "assert_no_alloc", "assert_no_leaks"] {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(&format!("{helper}:")))
            .unwrap_or_else(|| panic!("no line for {helper}: {stdout}{stderr}"));
        assert!(
            line.contains("panicked: memprof could not reserve its sampled-block region")
                && line.contains(&format!("{helper}()")),
            "{line}\n{stdout}{stderr}"
        );
    }
    // memprof's own one-line notice of the failure.
    assert!(
        stderr.contains("could not reserve address space"),
        "{stderr}"
    );
}
