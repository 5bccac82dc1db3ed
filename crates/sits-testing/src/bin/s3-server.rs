//! `s3-server ROOT [PORT]`: serves the folder ROOT (each sub-folder a bucket) as an
//! S3-compatible server on 127.0.0.1 until interrupted, printing the variables that
//! point `sits` at it. For trying object storage by hand and for the throughput
//! measurements of the README.

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(root) = args.first() else {
        eprintln!("usage: s3-server ROOT [PORT]");
        std::process::exit(2);
    };
    let port = match args.get(1).map(|p| p.parse::<u16>()) {
        None => 9000,
        Some(Ok(p)) => p,
        Some(Err(e)) => {
            eprintln!("PORT: {e}");
            std::process::exit(2);
        }
    };
    let server = match sits_testing::S3Server::start(std::path::Path::new(root), port) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{root}: {e}");
            std::process::exit(1);
        }
    };
    for (k, v) in server.env() {
        println!("export {k}={v}");
    }
    println!("# serving {root} on {}; Ctrl-C stops", server.endpoint());
    let mut line = String::new();
    // stop on end of input or Ctrl-C (which ends the process)
    while std::io::stdin()
        .read_line(&mut line)
        .map(|n| n > 0)
        .unwrap_or(false)
    {
        line.clear();
    }
    loop {
        std::thread::park();
    }
}
