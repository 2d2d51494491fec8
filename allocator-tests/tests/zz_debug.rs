#[inline(never)]
fn kept_site() {
    println!("x");
}
#[test]
fn dbg() {
    let pc = kept_site as fn() as usize;
    for q in [format!("{pc:#x}"), format!("{:#x}", pc + 4)] {
        let r = memprof::http::handle("GET", &format!("/debug/pprof/symbol?{q}"));
        eprintln!("{q} -> {:?}", String::from_utf8_lossy(&r.body));
    }
    let f = memprof::heap_profile;
    let r = memprof::http::handle(
        "GET",
        &format!("/debug/pprof/symbol?{:#x}", f as fn() -> _ as usize),
    );
    eprintln!("{:?}", String::from_utf8_lossy(&r.body));
}
