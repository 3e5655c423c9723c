//! `xvs-ofctl`: ovs-ofctl's commands, options and output, for xvswitchd and ovs-vswitchd.
//!
//! Every command follows what `ovs-ofctl` (Open vSwitch 3.1) does on the wire — which
//! OpenFlow version and flow format it negotiates, which messages it sends, that it closes
//! modifications with a barrier and reports the switch's errors — so scripts written for
//! ovs-ofctl behave the same.  The text layer lives in the library (`xvs_ofctl`).

use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::exit;
use std::time::Duration;

use openflow::message::{Experimenter, PacketOut, SwitchConfig};
use openflow::multipart::{MpReply, MpRequest, MultipartRequest};
use openflow::{Message, MultipartReply};
use xvs_ofctl::actions::{format_actions, parse_actions, Act, ParseCtx};
use xvs_ofctl::conn::{alloc_xid, local_failure, Conn, Received};
use xvs_ofctl::field::proto;
use xvs_ofctl::flow::{
    decode_flow_stats, encode_flow_mod, encode_flow_stats_request, format_flow_entry, parse_flow,
    Command, FlowEntry, FlowSpec, ParseFor, Protocol,
};
use xvs_ofctl::flowmatch::FlowMatch;
use xvs_ofctl::groups::{self, cmd as gcmd};
use xvs_ofctl::packet::eth_from_hex;
use xvs_ofctl::print::{message_to_string, ofp_to_string};
use xvs_ofctl::value::{parse_port, port_to_ofp11, ports, PortMap};

const PROG: &str = "xvs-ofctl";

fn fatal(msg: impl AsRef<str>) -> ! {
    eprintln!("{PROG}: {}", msg.as_ref());
    exit(1)
}

/// Command-line options (ovs-ofctl's).
struct Opts {
    /// Allowed OpenFlow versions (bitmap of wire versions).
    versions: u32,
    /// Allowed protocols (flow formats), from the versions and `-F`.
    protocols: u32,
    strict: bool,
    bundle: bool,
    /// --names (1), --no-names (0), default (-1: names when stdout is a terminal).
    names: i8,
    show_stats: bool,
    sort: Vec<(String, bool)>,
    readd: bool,
    unixctl: Option<String>,
    timeout: Option<u64>,
    packet_in_format: Option<u32>,
    verbosity: u8,
}

impl Opts {
    fn show_names(&self) -> bool {
        self.names > 0 || (self.names < 0 && std::io::stdout().is_terminal())
    }
    fn accept_names(&self) -> bool {
        self.names != 0
    }
}

fn usage() -> ! {
    println!(
        "{PROG}: OpenFlow switch management utility (ovs-ofctl compatible)
usage: {PROG} [OPTIONS] COMMAND [ARG...]

For OpenFlow switches:
  show SWITCH                 show OpenFlow information
  dump-desc SWITCH            print switch description
  dump-tables SWITCH          print table stats
  dump-ports SWITCH [PORT]    print port statistics
  dump-ports-desc SWITCH [PORT]  print port descriptions
  dump-flows SWITCH           print all flow entries
  dump-flows SWITCH FLOW      print matching FLOWs
  dump-aggregate SWITCH [FLOW]  print aggregate flow statistics
  add-flow SWITCH FLOW        add flow described by FLOW
  add-flows SWITCH FILE       add flows from FILE ('-' for stdin)
  mod-flows SWITCH FLOW       modify actions of matching FLOWs
  del-flows SWITCH [FLOW]     delete matching FLOWs
  replace-flows SWITCH FILE   replace flows with those in FILE
  diff-flows SOURCE1 SOURCE2  compare flows from two sources
  packet-out SWITCH \"in_port=P packet=HEX actions=A\"  execute ACTIONS on PACKET
  monitor SWITCH [MISSLEN] [invalid_ttl] [watch:[...]]  print packets received
  queue-stats SWITCH [PORT [QUEUE]]  print queue statistics
  dump-groups SWITCH [GROUP]  print group descriptions
  dump-group-stats SWITCH [GROUP]  print group statistics
  add-group SWITCH GROUP      add group described by GROUP
  add-groups SWITCH FILE      add groups from FILE
  mod-group SWITCH GROUP      modify specific group
  del-groups SWITCH [GROUP]   delete matching GROUPs
  insert-buckets SWITCH [GROUP]  add buckets to GROUP
  remove-buckets SWITCH [GROUP]  remove buckets from GROUP
  add-tlv-map SWITCH MAP      add TLV option mapping ({{class=C,type=T,len=L}}->tun_metadataN)
  del-tlv-map SWITCH [MAP]    remove TLV option mappings (all without MAP)
  dump-tlv-map SWITCH         print TLV option mappings
  trace BRIDGE FLOW           trace a packet through the pipeline (ofproto/trace)
  parse-flow FLOW             parse FLOW and print it as OpenFlow

SWITCH is a bridge name (meaning unix:$OVS_RUNDIR/BRIDGE.mgmt; $OVS_RUNDIR, else
$XVS_RUNDIR, else /var/run/openvswitch), unix:PATH or tcp:IP[:PORT].

Options:
  -O, --protocols=VERSION[,VERSION]  OpenFlow10 (default), OpenFlow11..OpenFlow15
  -F, --flow-format=FORMAT    restrict flow formats (openflow10, nxm, oxm, ...)
  --strict                    use strict match for mod-flows, del-flows
  --bundle                    use an atomic bundle for flow/group changes
  --names / --no-names        show port names (default when stdout is a terminal)
  --no-stats                  omit statistics in dump-flows output
  --sort[=FIELD] / --rsort[=FIELD]  sort dump-flows output
  --readd                     replace-flows re-adds unchanged flows
  --packet-in-format=FORMAT   monitor: standard, nxt_packet_in or nxt_packet_in2
  --unixctl=SOCKET            trace: control socket of the switch daemon
  -t, --timeout=SECS          give up after SECS seconds
  -v, --verbose               more output
  -h, --help / -V, --version"
    );
    exit(0)
}

fn parse_versions(s: &str) -> u32 {
    let mut bits = 0;
    for v in s
        .split(|c: char| c == ',' || c.is_ascii_whitespace())
        .filter(|v| !v.is_empty())
    {
        let b = match v.to_ascii_lowercase().as_str() {
            "openflow10" | "of10" | "1.0" => 1,
            "openflow11" | "of11" | "1.1" => 2,
            "openflow12" | "of12" | "1.2" => 3,
            "openflow13" | "of13" | "1.3" => 4,
            "openflow14" | "of14" | "1.4" => 5,
            "openflow15" | "of15" | "1.5" => 6,
            _ => fatal(format!("Unknown OpenFlow version: \"{v}\"")),
        };
        bits |= 1u32 << b;
    }
    bits
}

fn protocols_for_versions(v: u32) -> u32 {
    let mut p = 0;
    if v & (1 << 1) != 0 {
        p |= proto::OF10_ANY;
    }
    if v & (1 << 2) != 0 {
        p |= proto::OF11_STD;
    }
    if v & (1 << 3) != 0 {
        p |= proto::OF12_OXM;
    }
    if v & (1 << 4) != 0 {
        p |= proto::OF13_OXM;
    }
    if v & (1 << 5) != 0 {
        p |= proto::OF14_OXM;
    }
    if v & (1 << 6) != 0 {
        p |= proto::OF15_OXM;
    }
    p
}

fn parse_flow_formats(s: &str) -> u32 {
    let mut p = 0;
    for f in s.split(',') {
        p |= match f.trim().to_ascii_lowercase().as_str() {
            "any" => proto::ANY,
            "openflow10" => proto::OF10_STD_ANY,
            "openflow10-table_id" => proto::OF10_STD,
            "openflow10+table_id" => proto::OF10_STD_TID,
            "nxm" => proto::OF10_NXM_ANY,
            "nxm-table_id" => proto::OF10_NXM,
            "nxm+table_id" => proto::OF10_NXM_TID,
            "openflow11" => proto::OF11_STD,
            "oxm" => proto::ANY_OXM,
            "oxm-openflow12" => proto::OF12_OXM,
            "oxm-openflow13" => proto::OF13_OXM,
            "oxm-openflow14" => proto::OF14_OXM,
            "oxm-openflow15" => proto::OF15_OXM,
            _ => fatal(format!("{f}: unknown flow format")),
        };
    }
    p
}

fn main() {
    let mut o = Opts {
        versions: 1 << 1,
        protocols: 0,
        strict: false,
        bundle: false,
        names: -1,
        show_stats: true,
        sort: Vec::new(),
        readd: false,
        unixctl: None,
        timeout: None,
        packet_in_format: None,
        verbosity: 0,
    };
    let mut flow_formats = None;
    let mut args: Vec<String> = Vec::new();
    let mut it = std::env::args().skip(1);
    let mut versions_given = false;
    while let Some(a) = it.next() {
        if a == "--" {
            args.extend(it.by_ref());
            break;
        }
        if !a.starts_with('-') || a == "-" {
            args.push(a);
            continue;
        }
        let (name, inline) = match a.split_once('=') {
            Some((n, v)) if a.starts_with("--") => (n.to_string(), Some(v.to_string())),
            _ => (a.clone(), None),
        };
        let mut value = |n: &str| -> String {
            inline
                .clone()
                .or_else(|| it.next())
                .unwrap_or_else(|| fatal(format!("option '{n}' requires an argument")))
        };
        match name.as_str() {
            "-h" | "--help" => usage(),
            "-V" | "--version" => {
                println!(
                    "{PROG} {} (compatible with ovs-ofctl 3.1)",
                    env!("CARGO_PKG_VERSION")
                );
                println!("OpenFlow versions 0x1:0x6");
                return;
            }
            "-O" | "--protocols" => {
                o.versions = parse_versions(&value(&name));
                versions_given = true;
            }
            "-F" | "--flow-format" => flow_formats = Some(parse_flow_formats(&value(&name))),
            "--strict" => o.strict = true,
            "--bundle" => o.bundle = true,
            "--names" => o.names = 1,
            "--no-names" => o.names = 0,
            "--stats" => o.show_stats = true,
            "--no-stats" => o.show_stats = false,
            "--readd" => o.readd = true,
            "--sort" | "--rsort" => {
                let asc = name == "--sort";
                o.sort.push((inline.clone().unwrap_or_default(), asc));
            }
            "--unixctl" => o.unixctl = Some(value(&name)),
            "-t" | "--timeout" => {
                o.timeout = Some(
                    value(&name)
                        .parse()
                        .unwrap_or_else(|_| fatal("value of --timeout must be a number")),
                )
            }
            "--packet-in-format" | "-P" => {
                o.packet_in_format = Some(match value(&name).as_str() {
                    "standard" | "openflow10" => 0,
                    "nxt_packet_in" | "nxm" => 1,
                    "nxt_packet_in2" => 2,
                    f => fatal(format!("unknown packet-in format `{f}'")),
                })
            }
            "-v" | "--verbose" => o.verbosity = o.verbosity.saturating_add(1),
            "-m" | "--more" => o.verbosity = o.verbosity.saturating_add(1),
            "--color" | "--timestamp" | "--read-only" => {}
            _ if name.starts_with("-v") => o.verbosity = o.verbosity.saturating_add(1),
            _ => fatal(format!("unrecognized option '{a}' (use --help for help)")),
        }
    }
    let _ = versions_given;
    o.protocols = protocols_for_versions(o.versions);
    if let Some(f) = flow_formats {
        o.protocols &= f;
    }
    if args.is_empty() {
        fatal("missing command name; use --help for help");
    }
    if let Some(t) = o.timeout {
        // ovs-ofctl's --timeout: the whole run is bounded.
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(t));
            eprintln!("{PROG}: timeout after {t} seconds");
            exit(1);
        });
    }
    let cmd = args.remove(0);
    let need = |min: usize, max: usize| {
        if args.len() < min {
            fatal(format!("'{cmd}' command requires at least {min} arguments"));
        }
        if args.len() > max {
            fatal(format!("'{cmd}' command takes at most {max} arguments"));
        }
    };
    match cmd.as_str() {
        "show" => {
            need(1, 1);
            cmd_show(&o, &args[0])
        }
        "dump-desc" => {
            need(1, 1);
            dump_trivial(&o, &args[0], MpRequest::Desc)
        }
        "dump-tables" => {
            need(1, 1);
            dump_trivial(&o, &args[0], MpRequest::Table)
        }
        "dump-ports" => {
            need(1, 2);
            cmd_dump_ports(&o, &args, false)
        }
        "queue-stats" => {
            need(1, 3);
            cmd_queue_stats(&o, &args)
        }
        "dump-ports-desc" => {
            need(1, 2);
            cmd_dump_ports(&o, &args, true)
        }
        "dump-flows" => {
            need(1, 2);
            cmd_dump_flows(&o, &args, false)
        }
        "dump-aggregate" => {
            need(1, 2);
            cmd_dump_flows(&o, &args, true)
        }
        "add-flow" => {
            need(2, 2);
            cmd_flow_mod(&o, &args[0], &args[1], ParseFor::Mod(Command::Add))
        }
        "add-flows" => {
            need(2, 2);
            cmd_flow_mod_file(&o, &args[0], &args[1])
        }
        "mod-flows" => {
            need(2, 2);
            let c = if o.strict {
                Command::ModifyStrict
            } else {
                Command::Modify
            };
            cmd_flow_mod(&o, &args[0], &args[1], ParseFor::Mod(c))
        }
        "del-flows" => {
            need(1, 2);
            let c = if o.strict {
                Command::DeleteStrict
            } else {
                Command::Delete
            };
            let f = args.get(1).cloned().unwrap_or_default();
            cmd_flow_mod(&o, &args[0], &f, ParseFor::Mod(c))
        }
        "replace-flows" => {
            need(2, 2);
            cmd_replace_flows(&o, &args[0], &args[1])
        }
        "diff-flows" => {
            need(2, 2);
            cmd_diff_flows(&o, &args[0], &args[1])
        }
        "packet-out" => {
            need(2, usize::MAX);
            cmd_packet_out(&o, &args)
        }
        "monitor" => {
            need(1, usize::MAX);
            cmd_monitor(&o, &args)
        }
        "dump-groups" | "dump-group-desc" => {
            need(1, 2);
            cmd_dump_groups(&o, &args)
        }
        "dump-group-stats" => {
            need(1, 2);
            cmd_dump_group_stats(&o, &args)
        }
        "add-group" => {
            need(2, 2);
            cmd_group_mod(&o, &args[0], &[args[1].clone()], Some(gcmd::ADD))
        }
        "add-groups" => {
            need(2, 2);
            let lines = read_lines(&args[1]);
            cmd_group_mod(&o, &args[0], &lines, None)
        }
        "mod-group" => {
            need(2, 2);
            let c = if o.strict {
                gcmd::MODIFY
            } else {
                gcmd::ADD_OR_MOD
            };
            cmd_group_mod(&o, &args[0], &[args[1].clone()], Some(c))
        }
        "del-groups" => {
            need(1, 2);
            let g = args.get(1).cloned().unwrap_or_default();
            cmd_group_mod(&o, &args[0], &[g], Some(gcmd::DELETE))
        }
        "insert-buckets" => {
            need(2, 2);
            cmd_group_mod(&o, &args[0], &[args[1].clone()], Some(gcmd::INSERT_BUCKET))
        }
        "remove-buckets" => {
            need(1, 2);
            let g = args.get(1).cloned().unwrap_or_default();
            cmd_group_mod(&o, &args[0], &[g], Some(gcmd::REMOVE_BUCKET))
        }
        "trace" | "ofproto/trace" => {
            need(1, usize::MAX);
            cmd_trace(&o, &args)
        }
        "add-tlv-map" => {
            need(2, 2);
            cmd_tlv_mod(&o, &args[0], &args[1], xvs_ofctl::tlv::cmd::ADD)
        }
        "del-tlv-map" => {
            need(1, 2);
            match args.get(1) {
                Some(m) => cmd_tlv_mod(&o, &args[0], m, xvs_ofctl::tlv::cmd::DELETE),
                None => cmd_tlv_mod(&o, &args[0], "", xvs_ofctl::tlv::cmd::CLEAR),
            }
        }
        "dump-tlv-map" => {
            need(1, 1);
            let mut c = open(&o, &args[0]);
            let req = Message::Experimenter(Experimenter::TlvTableRequest);
            dump_transaction(&mut c, &req, None, o.verbosity);
        }
        "parse-flow" => {
            need(1, 1);
            cmd_parse_flow(&o, &args[0])
        }
        _ => fatal(format!("unknown command '{cmd}'; use --help for help")),
    }
}

// ---------------------------------------------------------------------------------------
// Connections and protocol negotiation (ovs-ofctl's open_vconn & friends)
// ---------------------------------------------------------------------------------------

fn open(o: &Opts, name: &str) -> Conn {
    let mut c = Conn::open(name, o.versions).unwrap_or_else(|e| fatal(e));
    if let Some(t) = o.timeout {
        let _ = c.set_timeout(Some(Duration::from_secs(t)));
    }
    c
}

/// The message that moves `cur` one step toward `want`, and the protocol after it
/// (`ofputil_encode_set_protocol`).
fn set_protocol_msg(cur: Protocol, want: Protocol) -> Option<(Message, Protocol)> {
    let base = |p: Protocol| match p {
        proto::OF10_STD_TID => proto::OF10_STD,
        proto::OF10_NXM_TID => proto::OF10_NXM,
        x => x,
    };
    let (cb, wb) = (base(cur), base(want));
    let tid = |p: Protocol| p & proto::TID != 0;
    if cb != wb {
        if proto::version(cb) != proto::version(wb) {
            return None;
        }
        let fmt = if wb == proto::OF10_NXM { 2 } else { 0 };
        let next = match (wb, tid(cur)) {
            (proto::OF10_NXM, true) => proto::OF10_NXM_TID,
            (proto::OF10_NXM, false) => proto::OF10_NXM,
            (proto::OF10_STD, true) => proto::OF10_STD_TID,
            (proto::OF10_STD, false) => proto::OF10_STD,
            _ => return None,
        };
        return Some((
            Message::Experimenter(Experimenter::SetFlowFormat(fmt)),
            next,
        ));
    }
    if tid(cur) != tid(want) && proto::version(cur) == 1 {
        let next = match (cb, tid(want)) {
            (proto::OF10_NXM, true) => proto::OF10_NXM_TID,
            (proto::OF10_NXM, false) => proto::OF10_NXM,
            (_, true) => proto::OF10_STD_TID,
            (_, false) => proto::OF10_STD,
        };
        return Some((
            Message::Experimenter(Experimenter::FlowModTableId(tid(want))),
            next,
        ));
    }
    None
}

fn try_set_protocol(c: &mut Conn, want: Protocol, cur: &mut Protocol) -> bool {
    loop {
        match set_protocol_msg(*cur, want) {
            None => return *cur == want,
            Some((m, next)) => match c.transact_noreply(&[m]) {
                Ok(None) => *cur = next,
                Ok(Some(_)) => return false,
                Err(e) => fatal(format!("talking to {} ({e})", c.name)),
            },
        }
    }
}

fn open_for_flow_mod(o: &Opts, name: &str, usable: u32) -> (Conn, Protocol) {
    if usable & o.protocols == 0 {
        fatal(format!(
            "none of the usable flow formats ({}) is among the allowed flow formats ({})",
            proto::to_string(usable),
            proto::to_string(o.protocols)
        ));
    }
    let mut c = open(o, name);
    let mut cur = proto::from_version(c.version);
    if usable & o.protocols & cur != 0 {
        return (c, cur);
    }
    for i in 0..9 {
        let f = 1u32 << i;
        if f != cur && f & usable & o.protocols != 0 && try_set_protocol(&mut c, f, &mut cur) {
            return (c, f);
        }
    }
    fatal(format!(
        "switch does not support any of the usable flow formats ({})",
        proto::to_string(usable)
    ))
}

fn set_protocol_for_flow_dump(o: &Opts, c: &mut Conn, usable: u32) -> Protocol {
    let mut cur = proto::from_version(c.version);
    for f in [
        proto::OF15_OXM,
        proto::OF14_OXM,
        proto::OF13_OXM,
        proto::OF12_OXM,
        proto::OF11_STD,
        proto::OF10_NXM,
        proto::OF10_STD,
    ] {
        if f & usable & o.protocols != 0 && try_set_protocol(c, f, &mut cur) {
            return f;
        }
    }
    if usable & o.protocols != 0 {
        fatal(format!(
            "switch does not support any of the usable flow formats ({})",
            proto::to_string(usable)
        ))
    }
    fatal(format!(
        "none of the usable flow formats ({}) is among the allowed flow formats ({})",
        proto::to_string(usable),
        proto::to_string(o.protocols)
    ))
}

/// Ports of the switch, for `--names` (a separate connection, as ovs-ofctl does).
fn port_map(o: &Opts, name: &str) -> PortMap {
    let mut map = PortMap::new();
    let Ok(mut c) = Conn::open(name, o.versions) else {
        return map;
    };
    let req = Message::MultipartRequest(MultipartRequest {
        flags: 0,
        body: MpRequest::PortDesc {
            port_no: (c.version >= 6).then_some(0xffff_ffff),
        },
    });
    if let Ok(replies) = c.dump(&req) {
        for r in replies {
            if let Message::MultipartReply(MultipartReply {
                body: MpReply::PortDesc(ps),
                ..
            }) = r.message
            {
                for p in ps {
                    map.insert(xvs_ofctl::print::port_no16(&p), &p.name_str());
                }
            }
        }
    }
    map
}

/// Parses with no port names first and fetches them from the switch only when the text
/// needs them (ovs-ofctl always fetches; the result is the same, with less traffic).
fn parse_with_names<T>(
    o: &Opts,
    switch: &str,
    f: impl Fn(Option<&PortMap>) -> Result<T, String>,
) -> T {
    match f(None) {
        Ok(x) => x,
        Err(e) => {
            if o.accept_names() {
                let map = port_map(o, switch);
                if !map.is_empty() {
                    if let Ok(x) = f(Some(&map)) {
                        return x;
                    }
                }
            }
            fatal(e)
        }
    }
}

fn names_to_show(o: &Opts, switch: &str) -> Option<PortMap> {
    o.show_names().then(|| port_map(o, switch))
}

/// Prints an error reply to stderr (with the request it refers to) and exits 1.
fn die_with_error(r: &Received, map: Option<&PortMap>) -> ! {
    if let Some(e) = local_failure(r) {
        fatal(e);
    }
    let _ = std::io::stdout().flush();
    eprint!("{}", ofp_to_string(&r.bytes, map, 2));
    exit(1)
}

/// `dump_transaction`: sends a request and prints every reply (errors included).
fn dump_transaction(c: &mut Conn, req: &Message, map: Option<&PortMap>, verbosity: u8) {
    let out = std::io::stdout();
    let mut out = out.lock();
    match req {
        Message::MultipartRequest(_) => match c.dump(req) {
            Ok(replies) => {
                for r in replies {
                    let _ = out.write_all(
                        message_to_string(&r.header, &r.message, map, verbosity + 1).as_bytes(),
                    );
                }
            }
            Err(r) => {
                if let Some(e) = local_failure(&r) {
                    fatal(e);
                }
                let _ = out.write_all(ofp_to_string(&r.bytes, map, verbosity + 1).as_bytes());
            }
        },
        _ => match c.transact(req) {
            Ok(r) => {
                let _ = out.write_all(
                    message_to_string(&r.header, &r.message, map, verbosity + 1).as_bytes(),
                );
            }
            Err(e) => fatal(format!("talking to {} ({e})", c.name)),
        },
    }
}

fn dump_trivial(o: &Opts, name: &str, body: MpRequest) {
    let mut c = open(o, name);
    let map = names_to_show(o, name);
    let req = Message::MultipartRequest(MultipartRequest { flags: 0, body });
    dump_transaction(&mut c, &req, map.as_ref(), o.verbosity);
}

// ---------------------------------------------------------------------------------------
// Commands
// ---------------------------------------------------------------------------------------

fn cmd_show(o: &Opts, name: &str) {
    let mut c = open(o, name);
    let r = c
        .transact(&Message::FeaturesRequest)
        .unwrap_or_else(|e| fatal(format!("talking to {name} ({e})")));
    let has_ports = c.version < 4;
    print!(
        "{}",
        message_to_string(&r.header, &r.message, None, o.verbosity + 1)
    );
    if !has_ports {
        let req = Message::MultipartRequest(MultipartRequest {
            flags: 0,
            body: MpRequest::PortDesc {
                port_no: (c.version >= 6).then_some(0xffff_ffff),
            },
        });
        dump_transaction(&mut c, &req, None, o.verbosity);
    }
    let mut c2 = open(o, name);
    dump_transaction(&mut c2, &Message::GetConfigRequest, None, o.verbosity);
}

fn str_to_port_no(o: &Opts, switch: &str, s: &str) -> u16 {
    if let Some(p) = parse_port(s, None) {
        return p;
    }
    if o.accept_names() {
        if let Some(p) = parse_port(s, Some(&port_map(o, switch))) {
            return p;
        }
    }
    fatal(format!("{switch}: unknown port `{s}'"))
}

/// `queue-stats SWITCH [PORT [QUEUE]]` ("all" or absent means every one).
fn cmd_queue_stats(o: &Opts, args: &[String]) {
    let name = &args[0];
    let port = match args.get(1) {
        Some(p) if !p.eq_ignore_ascii_case("all") => str_to_port_no(o, name, p),
        _ => ports::ANY,
    };
    // atoi(), as ovs-ofctl.
    let queue = match args.get(2) {
        Some(q) if !q.eq_ignore_ascii_case("all") => {
            xvs_ofctl::value::strtoull(q).map_or(0, |(v, _)| v as u32)
        }
        _ => u32::MAX,
    };
    let mut c = open(o, name);
    // OpenFlow 1.0 asks for all ports with OFPP_ALL
    let p = if c.version == 1 && port == ports::ANY {
        ports::ALL
    } else {
        port
    };
    let req = Message::MultipartRequest(MultipartRequest {
        flags: 0,
        body: MpRequest::QueueStats {
            port_no: port_to_ofp11(p),
            queue_id: queue,
        },
    });
    let map = names_to_show(o, name);
    dump_transaction(&mut c, &req, map.as_ref(), o.verbosity);
}

fn cmd_dump_ports(o: &Opts, args: &[String], desc: bool) {
    let mut c = open(o, &args[0]);
    let port = args
        .get(1)
        .map(|p| str_to_port_no(o, &args[0], p))
        .unwrap_or(ports::ANY);
    let map = names_to_show(o, &args[0]);
    let body = if desc {
        MpRequest::PortDesc {
            port_no: (c.version >= 6).then(|| port_to_ofp11(port)),
        }
    } else {
        MpRequest::PortStats {
            port_no: port_to_ofp11(port),
        }
    };
    let req = Message::MultipartRequest(MultipartRequest { flags: 0, body });
    dump_transaction(&mut c, &req, map.as_ref(), o.verbosity);
}

/// Collects every flow of a flow-stats dump (`vconn_dump_flows`).
fn fetch_flows(c: &mut Conn, fs: &FlowSpec, protocol: Protocol) -> Vec<FlowEntry> {
    let req = encode_flow_stats_request(fs, protocol, false).unwrap_or_else(|e| fatal(e));
    let replies = match c.dump(&req) {
        Ok(r) => r,
        Err(r) => die_with_error(&r, None),
    };
    let mut out = Vec::new();
    for r in replies {
        if let Message::MultipartReply(MultipartReply {
            body: MpReply::Flow { flows, .. },
            ..
        }) = &r.message
        {
            for f in flows {
                match decode_flow_stats(f, r.header.version) {
                    // Like ovs-ofctl's vconn_dump_flows, ignore Nicira's flow age
                    // extension here (only the raw ofp-print output shows it); OF1.5's
                    // OXS idle time is a standard statistic and stays.
                    Ok(mut e) => {
                        if r.header.version < 6 {
                            e.idle_age = None;
                            e.hard_age = None;
                        }
                        out.push(e)
                    }
                    Err(e) => fatal(format!("dump flows: {e}")),
                }
            }
        }
    }
    out
}

fn cmd_dump_flows(o: &Opts, args: &[String], aggregate: bool) {
    let name = &args[0];
    let text = args.get(1).map(String::as_str).unwrap_or("");
    let fs = parse_with_names(o, name, |m| parse_flow(text, ParseFor::Stats, m));
    let mut c = open(o, name);
    let protocol = set_protocol_for_flow_dump(o, &mut c, fs.usable);
    if aggregate {
        let req = encode_flow_stats_request(&fs, protocol, true).unwrap_or_else(|e| fatal(e));
        let map = names_to_show(o, name);
        dump_transaction(&mut c, &req, map.as_ref(), o.verbosity);
        return;
    }
    let show_names = o.show_names();
    if o.sort.is_empty() && !show_names && o.show_stats {
        let req = encode_flow_stats_request(&fs, protocol, false).unwrap_or_else(|e| fatal(e));
        dump_transaction(&mut c, &req, None, o.verbosity);
        return;
    }
    let mut flows = fetch_flows(&mut c, &fs, protocol);
    if !o.sort.is_empty() {
        sort_flows(&mut flows, &o.sort);
    }
    let map = if show_names {
        Some(port_map(o, name))
    } else {
        None
    };
    let mut out = std::io::stdout().lock();
    for f in &flows {
        let _ = writeln!(out, " {}", format_flow_entry(f, map.as_ref(), o.show_stats));
    }
}

/// `--sort`/`--rsort` (ovs-ofctl's compare_flows): by the given fields, then priority.
fn sort_flows(flows: &mut [FlowEntry], criteria: &[(String, bool)]) {
    use std::cmp::Ordering;
    flows.sort_by(|a, b| {
        for (field, asc) in criteria {
            let ord = if field.is_empty() || field == "priority" {
                a.priority.cmp(&b.priority)
            } else if let Some(mf) = xvs_ofctl::field::Mf::from_name(field) {
                let va = a.match_.get_field(mf);
                let vb = b.match_.get_field(mf);
                let ma = va.mask.iter().any(|&x| x != 0);
                let mb = vb.mask.iter().any(|&x| x != 0);
                match (ma, mb) {
                    (true, true) => va.value.cmp(&vb.value),
                    // Flows that match the field sort before those that wildcard it.
                    (true, false) => return Ordering::Less,
                    (false, true) => return Ordering::Greater,
                    (false, false) => Ordering::Equal,
                }
            } else {
                fatal(format!("{field}: unknown field name"))
            };
            let ord = if *asc { ord } else { ord.reverse() };
            if ord != Ordering::Equal {
                return ord;
            }
        }
        Ordering::Equal
    });
}

fn send_flow_mods(o: &Opts, name: &str, fms: &[FlowSpec], usable: u32) {
    let usable = if o.bundle {
        usable & proto::OF13_UP
    } else {
        usable
    };
    let (mut c, protocol) = open_for_flow_mod(o, name, usable);
    if o.bundle {
        let msgs: Vec<Message> = fms
            .iter()
            .map(|f| encode_flow_mod(f, protocol).unwrap_or_else(|e| fatal(e)))
            .collect();
        bundle(&mut c, &msgs);
        return;
    }
    for f in fms {
        let m = encode_flow_mod(f, protocol).unwrap_or_else(|e| fatal(e));
        match c.transact_noreply(&[m]) {
            Ok(None) => {}
            Ok(Some(err)) => die_with_error(&err, None),
            Err(e) => fatal(format!("talking to {name} ({e})")),
        }
    }
}

fn bundle(c: &mut Conn, msgs: &[Message]) {
    let errors = c
        .bundle_transact(msgs)
        .unwrap_or_else(|e| fatal(format!("talking to {} ({e})", c.name)));
    if errors.is_empty() {
        return;
    }
    for (e, idx) in &errors {
        let Message::Error(em) = &e.message else {
            eprint!("***decode error***");
            continue;
        };
        let name = xvs_ofctl::print::error_name(&em.code, e.header.version)
            .map(str::to_string)
            .unwrap_or_else(|| format!("{:?}", em.code));
        // The failing request in full (re-encoded with its xid), else what the error echoed.
        let shown = match idx.and_then(|i| msgs.get(i)) {
            Some(m) => ofp_to_string(&openflow::encode(c.version, e.header.xid, m), None, 1),
            None => ofp_to_string(&em.data, None, 1),
        };
        eprint!("Error {name} for: {shown}");
    }
    fatal(format!("talking to {} (Protocol error)", c.name));
}

fn cmd_flow_mod(o: &Opts, name: &str, text: &str, pf: ParseFor) {
    let fm = parse_with_names(o, name, |m| parse_flow(text, pf, m));
    let usable = fm.usable;
    send_flow_mods(o, name, &[fm], usable);
}

/// `ds_get_preprocessed_line`: lines without comments and surrounding blanks, joined
/// across backslash-newline, blank lines skipped.  Returns (line number, text).
fn preprocessed_lines(path: &str) -> Vec<(usize, String)> {
    let reader: Box<dyn BufRead> = if path == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        match std::fs::File::open(path) {
            Ok(f) => Box::new(std::io::BufReader::new(f)),
            Err(e) => fatal(format!("{path}: open failed ({})", io_text(&e))),
        }
    };
    let mut out = Vec::new();
    let mut acc = String::new();
    let mut start = 0;
    for (i, line) in reader.lines().enumerate() {
        let line = line.unwrap_or_else(|e| fatal(format!("{path}: read failed ({e})")));
        if acc.is_empty() {
            start = i + 1;
        }
        if let Some(l) = line.strip_suffix('\\') {
            acc.push_str(l);
            continue;
        }
        acc.push_str(&line);
        let mut l = std::mem::take(&mut acc);
        if let Some(h) = l.find('#') {
            l.truncate(h);
        }
        let l = l.trim().to_string();
        if !l.is_empty() {
            out.push((start, l));
        }
    }
    if !acc.trim().is_empty() {
        out.push((start, acc.trim().to_string()));
    }
    out
}

fn io_text(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "No such file or directory".into(),
        std::io::ErrorKind::PermissionDenied => "Permission denied".into(),
        _ => e.to_string(),
    }
}

fn read_lines(path: &str) -> Vec<String> {
    preprocessed_lines(path)
        .into_iter()
        .map(|(_, l)| l)
        .collect()
}

fn parse_flow_file(
    o: &Opts,
    switch: Option<&str>,
    path: &str,
    pf: ParseFor,
) -> (Vec<FlowSpec>, u32) {
    let lines = preprocessed_lines(path);
    let parse_all = |map: Option<&PortMap>| -> Result<(Vec<FlowSpec>, u32), String> {
        let mut usable = proto::ANY;
        let mut v = Vec::new();
        for (n, l) in &lines {
            let f = parse_flow(l, pf, map).map_err(|e| format!("{path}:{n}: {e}"))?;
            usable &= f.usable;
            v.push(f);
        }
        Ok((v, usable))
    };
    match switch {
        Some(s) => parse_with_names(o, s, parse_all),
        None => parse_all(None).unwrap_or_else(|e| fatal(e)),
    }
}

fn cmd_flow_mod_file(o: &Opts, name: &str, path: &str) {
    let (fms, usable) = parse_flow_file(o, Some(name), path, ParseFor::ModAny);
    send_flow_mods(o, name, &fms, usable);
}

/// One flow table entry of diff-flows/replace-flows: the parts a flow mod can set.
#[derive(Debug, Clone)]
struct Version {
    table_id: u8,
    cookie: u64,
    idle: u16,
    hard: u16,
    importance: u16,
    flags: u16,
    actions: Vec<Act>,
}

type FlowKey = (u8, FlowMatch, u16);

fn version_equals(a: &Version, b: &Version) -> bool {
    a.cookie == b.cookie
        && a.idle == b.idle
        && a.hard == b.hard
        && a.importance == b.importance
        && a.table_id == b.table_id
        && format_actions(&a.actions, None) == format_actions(&b.actions, None)
}

fn version_text(key: &FlowKey, v: &Version, map: Option<&PortMap>) -> String {
    let mut s = String::new();
    if v.table_id != 0 {
        s.push_str(&format!("table={} ", v.table_id));
    }
    s.push_str(&key.1.format(map, Some(key.2)));
    if v.cookie != 0 {
        s.push_str(&format!(" cookie=0x{:x}", v.cookie));
    }
    if v.idle != 0 {
        s.push_str(&format!(" idle_timeout={}", v.idle));
    }
    if v.hard != 0 {
        s.push_str(&format!(" hard_timeout={}", v.hard));
    }
    if v.importance != 0 {
        s.push_str(&format!(" importance={}", v.importance));
    }
    s.push_str(" actions=");
    s.push_str(&format_actions(&v.actions, map));
    s
}

type Table = BTreeMap<FlowKey, [Option<Version>; 2]>;

fn insert_version(t: &mut Table, key: FlowKey, v: Version, idx: usize) {
    t.entry(key).or_insert([None, None])[idx] = Some(v);
}

fn flows_from_file(o: &Opts, switch: Option<&str>, path: &str, t: &mut Table, idx: usize) -> u32 {
    let (fms, usable) = parse_flow_file(o, switch, path, ParseFor::Mod(Command::Add));
    for f in fms {
        let v = Version {
            table_id: if f.table_id == 255 { 0 } else { f.table_id },
            cookie: f.new_cookie,
            idle: f.idle_timeout,
            hard: f.hard_timeout,
            importance: f.importance,
            flags: f.flags & 1,
            actions: f.actions,
        };
        insert_version(t, (v.table_id, f.match_, f.priority), v, idx);
    }
    usable
}

fn flows_from_switch(c: &mut Conn, protocol: Protocol, t: &mut Table, idx: usize) {
    let all = parse_flow("", ParseFor::Stats, None).unwrap_or_else(|e| fatal(e));
    for e in fetch_flows(c, &all, protocol) {
        let v = Version {
            table_id: e.table_id,
            cookie: e.cookie,
            idle: e.idle_timeout,
            hard: e.hard_timeout,
            importance: e.importance,
            flags: 0,
            actions: e.actions,
        };
        insert_version(t, (e.table_id, e.match_, e.priority), v, idx);
    }
}

fn is_file_source(s: &str) -> bool {
    s.starts_with('/')
        || s.starts_with('.')
        || (!s.contains(':') && std::path::Path::new(s).is_file())
}

fn cmd_diff_flows(o: &Opts, a: &str, b: &str) {
    let mut t = Table::new();
    let mut map = None;
    for (idx, src) in [a, b].iter().enumerate() {
        if is_file_source(src) {
            flows_from_file(o, None, src, &mut t, idx);
        } else {
            let mut c = open(o, src);
            let p = set_protocol_for_flow_dump(o, &mut c, proto::ANY);
            flows_from_switch(&mut c, p, &mut t, idx);
            if map.is_none() {
                map = names_to_show(o, src);
            }
        }
    }
    let mut differences = false;
    let mut out = std::io::stdout().lock();
    for (key, vs) in &t {
        let differ = match (&vs[0], &vs[1]) {
            (Some(x), Some(y)) => !version_equals(x, y),
            _ => true,
        };
        if differ {
            if let Some(x) = &vs[0] {
                let _ = writeln!(out, "-{}", version_text(key, x, map.as_ref()));
            }
            if let Some(y) = &vs[1] {
                let _ = writeln!(out, "+{}", version_text(key, y, map.as_ref()));
            }
            differences = true;
        }
    }
    drop(out);
    if differences {
        exit(2);
    }
}

fn flow_mod_for(key: &FlowKey, v: &Version, command: Command) -> FlowSpec {
    let mut f = parse_flow("", ParseFor::Mod(Command::Delete), None).unwrap_or_else(|e| fatal(e));
    f.command = command;
    f.table_id = v.table_id;
    f.priority = key.2;
    f.match_ = key.1.clone();
    f.new_cookie = v.cookie;
    f.modify_cookie = true;
    f.idle_timeout = v.idle;
    f.hard_timeout = v.hard;
    f.importance = v.importance;
    f.flags = v.flags;
    f.actions = if matches!(
        command,
        Command::Add | Command::Modify | Command::ModifyStrict
    ) {
        v.actions.clone()
    } else {
        vec![]
    };
    f
}

fn cmd_replace_flows(o: &Opts, name: &str, path: &str) {
    let mut t = Table::new();
    let usable = flows_from_file(o, Some(name), path, &mut t, 0);
    let mut c = open(o, name);
    let protocol = set_protocol_for_flow_dump(o, &mut c, usable);
    flows_from_switch(&mut c, protocol, &mut t, 1);
    let mut msgs = Vec::new();
    // Per table: deletions first, then additions/updates (as ovs-ofctl orders them).
    let tables: std::collections::BTreeSet<u8> = t.keys().map(|k| k.0).collect();
    for table in tables {
        for (key, vs) in t.iter().filter(|(k, _)| k.0 == table) {
            if let (None, Some(sw)) = (&vs[0], &vs[1]) {
                msgs.push(flow_mod_for(key, sw, Command::DeleteStrict));
            }
        }
        for (key, vs) in t.iter().filter(|(k, _)| k.0 == table) {
            if let Some(file) = &vs[0] {
                let same = vs[1].as_ref().is_some_and(|sw| version_equals(sw, file));
                if o.readd || !same {
                    msgs.push(flow_mod_for(key, file, Command::Add));
                }
            }
        }
    }
    let encoded: Vec<Message> = msgs
        .iter()
        .map(|f| encode_flow_mod(f, protocol).unwrap_or_else(|e| fatal(e)))
        .collect();
    if o.bundle {
        bundle(&mut c, &encoded);
    } else if !encoded.is_empty() {
        match c.transact_noreply(&encoded) {
            Ok(None) => {}
            Ok(Some(err)) => die_with_error(&err, None),
            Err(e) => fatal(format!("talking to {name} ({e})")),
        }
    }
}

fn cmd_packet_out(o: &Opts, args: &[String]) {
    let name = &args[0];
    if args.len() > 3 {
        // Old syntax: packet-out SWITCH IN_PORT ACTIONS PACKET...
        let in_port = str_to_port_no(o, name, &args[1]);
        let (acts, usable) = parse_with_names(o, name, |m| {
            let mut ctx = ParseCtx::new(m);
            let a = parse_actions(&args[2], &mut ctx)?;
            Ok((a, ctx.usable))
        });
        let (mut c, protocol) = open_for_flow_mod(o, name, usable);
        for hex in &args[3..] {
            let pkt = eth_from_hex(hex).unwrap_or_else(|e| fatal(e));
            let m = packet_out_msg(in_port, &FlowMatch::new(), &acts, pkt, protocol);
            if let Ok(Some(e)) = c.transact_noreply(&[m]) {
                die_with_error(&e, None);
            }
        }
        return;
    }
    if args.len() != 2 {
        fatal(format!("Too many arguments ({})", args.len() + 1));
    }
    let text = &args[1];
    let (in_port, meta, acts, pkt, usable) =
        parse_with_names(o, name, |m| parse_packet_out(text, m));
    let (mut c, protocol) = open_for_flow_mod(o, name, usable);
    let msg = packet_out_msg(in_port, &meta, &acts, pkt, protocol);
    match c.transact_noreply(&[msg]) {
        Ok(None) => {}
        Ok(Some(e)) => die_with_error(&e, None),
        Err(e) => fatal(format!("talking to {name} ({e})")),
    }
}

type PacketOutParts = (u16, FlowMatch, Vec<Act>, Vec<u8>, u32);

/// `parse_ofp_packet_out_str`: in_port=, packet=, packet_type=, pipeline fields, actions=.
fn parse_packet_out(text: &str, map: Option<&PortMap>) -> Result<PacketOutParts, String> {
    let (head, act_s) = match text.find("action") {
        Some(i) => {
            let rest = &text[i..];
            match rest.find('=') {
                Some(j) => (&text[..i], Some(&rest[j + 1..])),
                None => (&text[..i], None),
            }
        }
        None => (text, None),
    };
    let mut in_port = ports::CONTROLLER;
    let mut meta = FlowMatch::new();
    let mut pkt = None;
    let mut usable = proto::ANY;
    for (k, v) in xvs_ofctl::actions::KeyValues::new(head) {
        if v.is_empty() {
            return Err(format!("field {k} missing value"));
        }
        match k {
            "in_port" => {
                let p = parse_port(v, map)
                    .ok_or_else(|| format!("{v} is not a valid OpenFlow port"))?;
                if p > ports::MAX && p != ports::LOCAL && p != ports::NONE && p != ports::CONTROLLER
                {
                    return Err(format!("{v} is not a valid OpenFlow port for PACKET_OUT"));
                }
                in_port = p;
            }
            "packet" => {
                pkt = Some(eth_from_hex(v).map_err(|e| format!("packet: {e}"))?);
            }
            "packet_type" => {
                // `NS,TYPE`, each read with C's lenient strtoul, as ovs-ofctl does here.
                let (ns, ty) = v
                    .split_once(',')
                    .ok_or_else(|| format!("{k}({v}) can't be interpreted"))?;
                let num = |x: &str| xvs_ofctl::value::strtoull(x).map_or(0, |(n, _)| n);
                let pt = ((num(ns) as u32 & 0xffff) << 16) | (num(ty) as u32 & 0xffff);
                let fv = xvs_ofctl::value::mf_parse(
                    xvs_ofctl::field::Mf::PacketType,
                    &format!("({},0x{:x})", pt >> 16, pt & 0xffff),
                    map,
                )?;
                usable &= meta.set_field(xvs_ofctl::field::Mf::PacketType, &fv)?;
            }
            _ => {
                let mf = xvs_ofctl::field::Mf::from_name(k)
                    .ok_or_else(|| format!("unknown keyword {k}"))?;
                let fv = xvs_ofctl::value::mf_parse(mf, v, map)?;
                usable &= meta.set_field(mf, &fv)?;
                if !mf.is_pipeline() {
                    return Err(format!("{k} is not a valid pipeline field for PACKET_OUT"));
                }
            }
        }
    }
    let pkt = match pkt {
        Some(p) if !p.is_empty() => p,
        _ => return Err("must specify packet".into()),
    };
    let acts = match act_s {
        Some(a) => {
            let mut ctx = ParseCtx::new(map);
            let acts = parse_actions(a, &mut ctx)?;
            usable &= ctx.usable;
            acts
        }
        None => vec![],
    };
    Ok((in_port, meta, acts, pkt, usable))
}

fn packet_out_msg(
    in_port: u16,
    meta: &FlowMatch,
    acts: &[Act],
    data: Vec<u8>,
    protocol: Protocol,
) -> Message {
    let v = proto::version(protocol);
    let actions = xvs_ofctl::actions::encode_actions(acts, v, meta).unwrap_or_else(|e| fatal(e));
    let match_ = if v >= 6 {
        let mut m = meta.clone();
        m.set(xvs_ofctl::flowmatch::Slot::InPort, in_port as u128, 0xffff);
        Some(m.to_codec(v, 0, 0).unwrap_or_else(|e| fatal(e)))
    } else {
        // Before OpenFlow 1.5 a packet-out has nowhere to put pipeline fields other than
        // in_port; ovs-ofctl 3.1 silently sends it without them, and so do we, so that
        // the same command lines behave the same.
        None
    };
    Message::PacketOut(PacketOut {
        buffer_id: u32::MAX,
        in_port: port_to_ofp11(in_port),
        match_,
        actions,
        data,
    })
}

fn cmd_monitor(o: &Opts, args: &[String]) {
    let name = &args[0];
    let mut c = open(o, name);
    for a in &args[1..] {
        if a.starts_with(|ch: char| ch.is_ascii_digit()) {
            let miss: u16 = a.parse().unwrap_or(u16::MAX);
            set_miss_send_len(&mut c, miss);
        } else if a == "invalid_ttl" {
            let cfg = get_config(&mut c);
            let m = Message::SetConfig(SwitchConfig {
                flags: cfg.flags | 4,
                miss_send_len: cfg.miss_send_len,
            });
            if let Ok(Some(e)) = c.transact_noreply(&[m]) {
                die_with_error(&e, None);
            }
        } else if let Some(w) = a.strip_prefix("watch:") {
            let req =
                xvs_ofctl::monitor::flow_monitor_request(w, c.version).unwrap_or_else(|e| fatal(e));
            let xid = alloc_xid();
            let bytes = req(xid);
            c.send_raw(&bytes).unwrap_or_else(|e| fatal(e));
            // Print the initial replies (until one without "more") as dump_transaction does.
            loop {
                let r = c.recv().unwrap_or_else(|e| fatal(e));
                if r.header.xid != xid {
                    eprint!("{}", ofp_to_string(&r.bytes, None, o.verbosity + 2));
                    continue;
                }
                print!(
                    "{}",
                    xvs_ofctl::monitor::to_string(&r, None, o.verbosity + 1)
                );
                let _ = std::io::stdout().flush();
                let more = match &r.message {
                    Message::MultipartReply(m) => m.flags & 1 != 0,
                    _ => false,
                };
                if !more {
                    break;
                }
            }
        } else if a == "resume" {
            set_miss_send_len(&mut c, u16::MAX);
        } else {
            fatal(format!("{a}: unsupported \"monitor\" argument"));
        }
    }
    let resume = args[1..].iter().any(|a| a == "resume");
    // Prefer NXT_PACKET_IN2, else (OF1.0) NXT_PACKET_IN, unless a format was requested.
    match o.packet_in_format {
        Some(f) => {
            let m = Message::Experimenter(Experimenter::SetPacketInFormat(f));
            if let Ok(Some(e)) = c.transact_noreply(&[m]) {
                die_with_error(&e, None);
            }
        }
        None => {
            let m = Message::Experimenter(Experimenter::SetPacketInFormat(2));
            let ok = matches!(c.transact_noreply(&[m]), Ok(None));
            if !ok && c.version == 1 {
                let m = Message::Experimenter(Experimenter::SetPacketInFormat(1));
                let _ = c.transact_noreply(&[m]);
            }
        }
    }
    let _ = c.set_timeout(None);
    let map = names_to_show(o, name);
    loop {
        let r = match c.recv() {
            Ok(r) => r,
            Err(e) => fatal(format!("vconn_recv: {e}")),
        };
        eprint!(
            "{}",
            xvs_ofctl::monitor::to_string(&r, map.as_ref(), o.verbosity + 2)
        );
        let _ = std::io::stderr().flush();
        if resume {
            if let Message::PacketIn2(p) = &r.message {
                if p.continuation().is_some() {
                    let m = Message::Resume(p.clone());
                    let bytes = openflow::encode(c.version, 0, &m);
                    eprint!(
                        "send: {}",
                        ofp_to_string(&bytes, map.as_ref(), o.verbosity + 2)
                    );
                    let _ = c.send_raw(&bytes);
                }
            }
        }
    }
}

fn get_config(c: &mut Conn) -> SwitchConfig {
    match c.transact(&Message::GetConfigRequest) {
        Ok(Received {
            message: Message::GetConfigReply(cfg),
            ..
        }) => cfg,
        Ok(r) => die_with_error(&r, None),
        Err(e) => fatal(format!("talking to {} ({e})", c.name)),
    }
}

fn set_miss_send_len(c: &mut Conn, miss: u16) {
    let cfg = get_config(c);
    let m = Message::SetConfig(SwitchConfig {
        flags: cfg.flags,
        miss_send_len: miss,
    });
    if let Ok(Some(e)) = c.transact_noreply(&[m]) {
        die_with_error(&e, None);
    }
}

/// `dump-group-stats SWITCH [group_id=N]`.
fn cmd_dump_group_stats(o: &Opts, args: &[String]) {
    let name = &args[0];
    let text = args.get(1).map(String::as_str).unwrap_or("");
    let g = groups::parse_group(text, Some(gcmd::DELETE), None).unwrap_or_else(|e| fatal(e));
    let mut c = open(o, name);
    let xid = alloc_xid();
    c.send_raw(&groups::group_stats_request(c.version, g.group_id, xid))
        .unwrap_or_else(|e| fatal(e));
    print_replies(&mut c, xid, None, o.verbosity);
}

/// Prints the replies to `xid` (until one without the "more" flag), as dump_transaction.
fn print_replies(c: &mut Conn, xid: u32, map: Option<&PortMap>, verbosity: u8) {
    let mut out = std::io::stdout().lock();
    loop {
        let r = c.recv().unwrap_or_else(|e| fatal(e));
        if r.header.xid != xid {
            continue;
        }
        let _ = out.write_all(xvs_ofctl::monitor::to_string(&r, map, verbosity + 1).as_bytes());
        let more = match &r.message {
            Message::MultipartReply(m) => m.flags & 1 != 0,
            _ => false,
        };
        if !more {
            break;
        }
    }
}

fn cmd_dump_groups(o: &Opts, args: &[String]) {
    let name = &args[0];
    // ofputil_group_from_string: "all", "any" or a number; anything else means all
    // groups (ovs-ofctl only logs a warning).
    let gid = match args.get(1).map(|g| g.to_ascii_lowercase()) {
        Some(g) if g == "any" => 0xffff_ffff,
        Some(g) => g
            .parse::<u32>()
            .ok()
            .filter(|n| *n <= 0xffff_ff00)
            .unwrap_or(groups::OFPG_ALL),
        None => groups::OFPG_ALL,
    };
    let mut c = open(o, name);
    let map = names_to_show(o, name);
    let xid = alloc_xid();
    let req = groups::group_desc_request(c.version, gid, xid);
    c.send_raw(&req).unwrap_or_else(|e| fatal(e));
    print_replies(&mut c, xid, map.as_ref(), o.verbosity);
}

fn cmd_group_mod(o: &Opts, name: &str, texts: &[String], command: Option<u16>) {
    let mut specs = Vec::new();
    let mut usable = proto::ANY;
    for t in texts {
        let g = parse_with_names(o, name, |m| groups::parse_group(t, command, m));
        usable &= g.usable;
        specs.push(g);
    }
    // Bundles need OpenFlow 1.3+ (bundle_group_mod__).
    let usable = if o.bundle {
        usable & proto::OF13_UP
    } else {
        usable
    };
    let (mut c, _) = open_for_flow_mod(o, name, usable);
    let mut encoded = Vec::new();
    for g in &specs {
        let xid = alloc_xid();
        encoded.push(groups::encode_group_mod(g, c.version, xid).unwrap_or_else(|e| fatal(e)));
    }
    if o.bundle {
        let msgs: Vec<Message> = encoded
            .iter()
            .map(|b| {
                openflow::decode(b)
                    .map(|(_, m)| m)
                    .unwrap_or_else(|e| fatal(format!("cannot bundle group mod: {e}")))
            })
            .collect();
        bundle(&mut c, &msgs);
        return;
    }
    for b in &encoded {
        c.send_raw(b).unwrap_or_else(|e| fatal(e));
        let xid = u32::from_be_bytes([b[4], b[5], b[6], b[7]]);
        let barrier = c
            .send(&Message::BarrierRequest)
            .unwrap_or_else(|e| fatal(e));
        let mut err = None;
        loop {
            let r = c.recv().unwrap_or_else(|e| fatal(e));
            if r.header.xid == barrier {
                break;
            }
            if r.header.xid == xid && err.is_none() {
                err = Some(r);
            }
        }
        if let Some(e) = err {
            die_with_error(&e, None);
        }
    }
}

/// Finds the daemon's control socket the way ovs-appctl does for `-t ovs-vswitchd`
/// (`$OVS_RUNDIR/ovs-vswitchd.PID.ctl`), or xvswitchd's (`$XVS_RUNDIR/xvswitchd.ctl`).
/// The daemon's control socket, and the name to blame in errors (what ovs-appctl's `-t`
/// would have been).
fn unixctl_path(o: &Opts) -> (PathBuf, String) {
    if let Some(p) = &o.unixctl {
        return (
            PathBuf::from(p.strip_prefix("unix:").unwrap_or(p)),
            p.clone(),
        );
    }
    let mut candidates = Vec::new();
    let ovs = std::env::var("OVS_RUNDIR").unwrap_or_else(|_| "/var/run/openvswitch".into());
    if let Ok(pid) = std::fs::read_to_string(format!("{ovs}/ovs-vswitchd.pid")) {
        candidates.push((
            PathBuf::from(format!("{ovs}/ovs-vswitchd.{}.ctl", pid.trim())),
            "ovs-vswitchd",
        ));
    }
    let xvs = std::env::var("XVS_RUNDIR").unwrap_or_else(|_| "/var/run/xvswitch".into());
    candidates.push((PathBuf::from(format!("{xvs}/xvswitchd.ctl")), "xvswitchd"));
    candidates.push((PathBuf::from(format!("{ovs}/xvswitchd.ctl")), "xvswitchd"));
    for (c, name) in &candidates {
        if c.exists() {
            return (c.clone(), name.to_string());
        }
    }
    fatal(format!(
        "cannot find the switch's control socket (tried {}); use --unixctl=PATH",
        candidates
            .iter()
            .map(|(p, _)| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

/// `trace BRIDGE FLOW [PACKET]`: the daemon's `ofproto/trace`, printed as ovs-appctl
/// prints it (result on stdout; an error's text on stderr and exit status 2).
fn cmd_trace(o: &Opts, args: &[String]) {
    let (path, target) = unixctl_path(o);
    let timeout = Some(Duration::from_secs(o.timeout.unwrap_or(30)));
    match control::client::call(&path, "ofproto/trace", args, timeout) {
        Ok(out) => {
            print!("{out}");
            if !out.is_empty() && !out.ends_with('\n') {
                println!();
            }
        }
        Err(control::client::ClientError::Remote(e)) => {
            eprint!("{e}");
            if !e.is_empty() && !e.ends_with('\n') {
                eprintln!();
            }
            eprintln!("{PROG}: {target}: server returned an error");
            exit(2);
        }
        Err(e) => fatal(e.to_string()),
    }
}

/// `add-tlv-map` / `del-tlv-map`: one NXT_TLV_TABLE_MOD (Nicira extension, so any
/// NXM/OXM protocol), then a barrier.
fn cmd_tlv_mod(o: &Opts, name: &str, text: &str, command: u16) {
    let maps = xvs_ofctl::tlv::parse_tlv_maps(text).unwrap_or_else(|e| fatal(e));
    let (mut c, _) = open_for_flow_mod(o, name, proto::NXM_OXM_ANY);
    let m = Message::Experimenter(Experimenter::TlvTableMod { command, maps });
    match c.transact_noreply(&[m]) {
        Ok(None) => {}
        Ok(Some(err)) => die_with_error(&err, None),
        Err(e) => fatal(format!("talking to {name} ({e})")),
    }
}

fn cmd_parse_flow(o: &Opts, text: &str) {
    let f = parse_flow(text, ParseFor::ModAny, None).unwrap_or_else(|e| fatal(e));
    println!("usable protocols: {}", proto::to_string(f.usable));
    let allowed = f.usable & o.protocols;
    if allowed == 0 {
        fatal(format!(
            "none of the usable flow formats ({}) is among the allowed flow formats ({})",
            proto::to_string(f.usable),
            proto::to_string(o.protocols)
        ));
    }
    let p = 1u32 << allowed.trailing_zeros();
    println!("chosen protocol: {}", proto::to_string(p));
    let m = encode_flow_mod(&f, p).unwrap_or_else(|e| fatal(e));
    let bytes = openflow::encode(proto::version(p), 1, &m);
    print!("{}", ofp_to_string(&bytes, None, 1));
}
