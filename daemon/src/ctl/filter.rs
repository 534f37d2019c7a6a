//! A capture filter expression (tcpdump's syntax) made into classic BPF by
//! libpcap's own compiler, `pcap_compile` on a dead Ethernet handle,
//! through the `pcap` crate.
//!
//! Why libpcap: operators type tcpdump expressions, and only libpcap
//! parses all of them exactly as tcpdump does; a grammar of our own would
//! be a subset that differs in the corners. It runs here, in the `lingerd
//! ctl` process, never in the daemon: the daemon receives the compiled
//! program, checks it (`lingerd_dataplane::capture::bpf`) and interprets
//! it, so no C parser ever sees a request inside the daemon.
//!
//! It owns the call and the conversion of its output. It may not do I/O
//! nor run inside the daemon.

/// The program of `expr`, as the ctl protocol carries it (`[code, jt, jf,
/// k]` per instruction); an empty expression is no program (every
/// frame). libpcap's message when it does not compile.
pub fn compile(expr: &str) -> Result<Vec<(u16, u8, u8, u32)>, String> {
    if expr.trim().is_empty() {
        return Ok(Vec::new());
    }
    let dead =
        pcap::Capture::dead(pcap::Linktype::ETHERNET).map_err(|e| format!("libpcap: {e}"))?;
    let program = dead
        .compile(expr, true)
        .map_err(|e| format!("filter {expr:?}: {e}"))?;
    program
        .get_instructions()
        .iter()
        .map(|i| instruction(&i.to_string()))
        .collect()
}

/// `pcap` shows an instruction as `code jt jf k` (its fields are not
/// public otherwise); a test checks the round trip on a known program.
fn instruction(text: &str) -> Result<(u16, u8, u8, u32), String> {
    let bad = || format!("libpcap gave an instruction this lingerd cannot read: {text:?}");
    let mut f = text.split_whitespace();
    let mut next = || f.next().ok_or_else(bad);
    let code = next()?.parse().map_err(|_| bad())?;
    let jt = next()?.parse().map_err(|_| bad())?;
    let jf = next()?.parse().map_err(|_| bad())?;
    let k = next()?.parse().map_err(|_| bad())?;
    if f.next().is_some() {
        return Err(bad());
    }
    Ok((code, jt, jf, k))
}

#[cfg(test)]
mod tests {
    use lingerd_dataplane::capture::bpf::{Insn, Program};

    use super::*;

    fn program(expr: &str) -> Program {
        let insns: Vec<Insn> = compile(expr)
            .unwrap()
            .into_iter()
            .map(|(code, jt, jf, k)| Insn { code, jt, jf, k })
            .collect();
        Program::new(&insns).expect("libpcap's programs pass our checks")
    }

    /// An Ethernet + IPv4 + TCP frame with these addresses, ports, flags.
    fn tcp(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, flags: u8) -> Vec<u8> {
        let mut f = vec![0u8; 54];
        f[12] = 0x08;
        f[14] = 0x45;
        f[16..18].copy_from_slice(&40u16.to_be_bytes());
        f[22] = 64;
        f[23] = 6;
        f[26..30].copy_from_slice(&src);
        f[30..34].copy_from_slice(&dst);
        f[34..36].copy_from_slice(&sport.to_be_bytes());
        f[36..38].copy_from_slice(&dport.to_be_bytes());
        f[46] = 0x50;
        f[47] = flags;
        f
    }

    #[test]
    fn tcpdump_expressions_compile_and_our_interpreter_runs_them() {
        let a = [198, 18, 0, 2];
        let b = [198, 18, 0, 3];
        let p = program("host 198.18.0.2 and port 80");
        assert!(p.run(&tcp(a, b, 40000, 80, 0x10)) > 0);
        assert!(p.run(&tcp(b, a, 80, 40000, 0x10)) > 0);
        assert_eq!(p.run(&tcp(b, b, 40000, 80, 0x10)), 0, "other host");
        assert_eq!(p.run(&tcp(a, b, 40000, 81, 0x10)), 0, "other port");
        let rst = program("tcp[tcpflags] & tcp-rst != 0");
        assert!(rst.run(&tcp(b, a, 7, 40000, 0x14)) > 0);
        assert_eq!(rst.run(&tcp(b, a, 7, 40000, 0x10)), 0);
        let arp = program("arp");
        let mut f = vec![0u8; 42];
        f[12..14].copy_from_slice(&[0x08, 0x06]);
        assert!(arp.run(&f) > 0);
        assert_eq!(arp.run(&tcp(a, b, 1, 2, 0)), 0);
        assert!(compile("").unwrap().is_empty());
        assert!(compile("   ").unwrap().is_empty());
    }

    /// An Ethernet + IPv6 + TCP frame with these addresses, ports, flags.
    fn tcp6(src: [u8; 16], dst: [u8; 16], sport: u16, dport: u16, flags: u8) -> Vec<u8> {
        let mut f = vec![0u8; 74];
        f[12..14].copy_from_slice(&[0x86, 0xdd]);
        f[14] = 0x60;
        f[18..20].copy_from_slice(&20u16.to_be_bytes());
        f[20] = 6;
        f[21] = 64;
        f[22..38].copy_from_slice(&src);
        f[38..54].copy_from_slice(&dst);
        f[54..56].copy_from_slice(&sport.to_be_bytes());
        f[56..58].copy_from_slice(&dport.to_be_bytes());
        f[66] = 0x50;
        f[67] = flags;
        f
    }

    #[test]
    fn ipv6_expressions_run_on_ipv6_frames() {
        let a: std::net::Ipv6Addr = "2001:db8::2".parse().unwrap();
        let b: std::net::Ipv6Addr = "2001:db8::3".parse().unwrap();
        let (a, b) = (a.octets(), b.octets());
        let p = program("ip6 host 2001:db8::2 and tcp port 80");
        assert!(p.run(&tcp6(a, b, 40000, 80, 0x10)) > 0);
        assert!(p.run(&tcp6(b, a, 80, 40000, 0x10)) > 0);
        assert_eq!(p.run(&tcp6(b, b, 40000, 80, 0x10)), 0, "other host");
        assert_eq!(p.run(&tcp6(a, b, 40000, 81, 0x10)), 0, "other port");
        assert_eq!(
            p.run(&tcp([198, 18, 0, 2], [198, 18, 0, 3], 40000, 80, 0x10)),
            0,
            "an IPv4 frame"
        );
        let net = program("net 2001:db8::/32");
        assert!(net.run(&tcp6(a, b, 1, 2, 0)) > 0);
    }

    #[test]
    fn a_bad_expression_is_libpcaps_message() {
        let e = compile("host and and").unwrap_err();
        assert!(e.contains("syntax error"), "{e}");
        assert!(compile("port 99999").is_err());
        assert!(compile("host\0x").is_err(), "a NUL cannot reach libpcap");
    }

    #[test]
    fn the_text_form_is_read_strictly() {
        assert_eq!(instruction("40 0 0 12"), Ok((40, 0, 0, 12)));
        assert!(instruction("40 0 0").is_err());
        assert!(instruction("40 0 0 12 1").is_err());
        assert!(instruction("70000 0 0 12").is_err());
        assert!(instruction("40 -1 0 12").is_err());
    }
}
