//! `xvs-ofctl`: the OpenFlow CLI. The OpenFlow issue fills it; until then it says so.

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("--version") | Some("-V") => println!("xvs-ofctl {}", env!("CARGO_PKG_VERSION")),
        _ => {
            eprintln!(
                "xvs-ofctl: OpenFlow commands are not implemented yet (see the OpenFlow issue)"
            );
            std::process::exit(2);
        }
    }
}
