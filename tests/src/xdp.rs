//! Which XDP program, if any, is attached to an interface.

use serde_json::Value;

use crate::netns::Netns;

/// The id of the XDP program attached to `ifname` in `ns`, or `None` when the
/// interface has none (or does not exist). Parses `ip -j -d link show`, so
/// tests can check that an interface is clean after a detach.
pub fn xdp_prog_id(ns: &Netns, ifname: &str) -> Option<u32> {
    let json = ns.ip(["-j", "-d", "link", "show", "dev", ifname]).ok()?;
    parse_xdp_prog_id(&json)
}

/// The XDP program id in `ip -j -d link show dev IF` output: `xdp.prog.id`
/// when one program is attached, else the first of `xdp.attached[].prog.id`
/// (several modes at once, e.g. generic and driver).
fn parse_xdp_prog_id(json: &str) -> Option<u32> {
    let links: Value = serde_json::from_str(json).ok()?;
    let xdp = links.get(0)?.get("xdp")?;
    let id_of = |entry: &Value| entry.get("prog")?.get("id")?.as_u64();
    let id = id_of(xdp).or_else(|| xdp.get("attached")?.as_array()?.iter().find_map(id_of))?;
    u32::try_from(id).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_xdp_key_means_no_program() {
        let json = r#"[{"ifindex":2,"ifname":"veth0","flags":["UP"],"mtu":1500}]"#;
        assert_eq!(parse_xdp_prog_id(json), None);
        assert_eq!(parse_xdp_prog_id("[]"), None);
        assert_eq!(parse_xdp_prog_id("not json"), None);
    }

    #[test]
    fn single_program() {
        // As iproute2 6.1 prints it on Linux 6.18 (generic mode).
        let json = r#"[{"ifindex":2,"ifname":"veth0","xdp":{"mode":2,"prog":{"id":100,"name":"xdp_pass","tag":"614b434cd8324ecc","jited":1,"load_time":723367349733,"created_by_uid":0},"attached":[{"mode":2,"prog":{"id":100,"name":"xdp_pass","tag":"614b434cd8324ecc","jited":1}}]}}]"#;
        assert_eq!(parse_xdp_prog_id(json), Some(100));
    }

    #[test]
    fn several_modes_attached() {
        // Multi mode (driver and offload): no top-level "prog".
        let json = r#"[{"ifindex":2,"ifname":"veth0","xdp":{"mode":4,"attached":[{"mode":2,"prog":{"id":7}},{"mode":1,"prog":{"id":8}}]}}]"#;
        assert_eq!(parse_xdp_prog_id(json), Some(7));
    }
}

/// Kernel test: attach a real program with bpftool in each mode, check what
/// [`xdp_prog_id`] reports, then that a detach leaves the interface clean.
#[cfg(test)]
mod kernel_tests {
    use std::{
        ffi::c_void,
        os::fd::{AsRawFd, FromRawFd, OwnedFd},
        ptr,
    };

    use super::*;
    use crate::{require_root_or_skip, veth_pair};

    #[test]
    fn xdp_prog_id_follows_attach_and_detach() {
        if !require_root_or_skip("xdp_prog_id_follows_attach_and_detach") {
            return;
        }
        let a = Netns::new("xdp-a").unwrap();
        let b = Netns::new("xdp-b").unwrap();
        let _veth = veth_pair(&a, "veth0", &b, "veth1").unwrap();
        assert_eq!(xdp_prog_id(&a, "veth0"), None);
        assert_eq!(xdp_prog_id(&a, "no-such-if"), None);

        let (_prog, id) = load_xdp_pass();
        // The kernel refuses generic and driver mode at once on one device,
        // so each mode is attached and detached in turn.
        for mode in ["xdpgeneric", "xdpdrv"] {
            bpftool(
                &a,
                &["net", "attach", mode, "id", &id.to_string(), "dev", "veth0"],
            );
            assert_eq!(xdp_prog_id(&a, "veth0"), Some(id), "{mode}");
            bpftool(&a, &["net", "detach", mode, "dev", "veth0"]);
            assert_eq!(xdp_prog_id(&a, "veth0"), None, "after {mode} detach");
        }
    }

    fn bpftool(ns: &Netns, args: &[&str]) {
        let output = ns.exec("bpftool", args).unwrap();
        assert!(
            output.status.success(),
            "bpftool {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// `bpf_attr` for `BPF_PROG_LOAD`, up to `expected_attach_type`.
    #[repr(C)]
    #[derive(Default)]
    struct ProgLoadAttr {
        prog_type: u32,
        insn_cnt: u32,
        insns: u64,
        license: u64,
        log_level: u32,
        log_size: u32,
        log_buf: u64,
        kern_version: u32,
        prog_flags: u32,
        prog_name: [u8; 16],
        prog_ifindex: u32,
        expected_attach_type: u32,
    }

    /// `bpf_attr` for `BPF_OBJ_GET_INFO_BY_FD`.
    #[repr(C)]
    struct InfoAttr {
        bpf_fd: u32,
        info_len: u32,
        info: u64,
    }

    const BPF_PROG_LOAD: libc::c_long = 5;
    const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
    const BPF_PROG_TYPE_XDP: u32 = 6;

    fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> libc::c_long {
        // SAFETY: `attr` is a live, properly laid out `bpf_attr` prefix of
        // the size passed; the kernel reads it and writes only within it (or
        // into buffers it points to, which the callers keep alive).
        unsafe {
            libc::syscall(
                libc::SYS_bpf,
                cmd,
                ptr::from_mut(attr).cast::<c_void>(),
                size_of::<T>(),
            )
        }
    }

    /// Loads `r0 = XDP_PASS; exit` and returns its fd and id.
    fn load_xdp_pass() -> (OwnedFd, u32) {
        // BPF_ALU64 | BPF_MOV | BPF_K into r0, imm 2 (XDP_PASS); BPF_JMP | BPF_EXIT.
        let insns: [u64; 2] = [0xb7 | (2 << 32), 0x95];
        let license = c"GPL";
        let mut load = ProgLoadAttr {
            prog_type: BPF_PROG_TYPE_XDP,
            insn_cnt: 2,
            insns: insns.as_ptr() as u64,
            license: license.as_ptr() as u64,
            ..ProgLoadAttr::default()
        };
        load.prog_name[..9].copy_from_slice(b"xdp_pass\0");
        let fd = bpf(BPF_PROG_LOAD, &mut load);
        assert!(
            fd >= 0,
            "BPF_PROG_LOAD: {}",
            std::io::Error::last_os_error()
        );
        // SAFETY: the kernel just returned this new fd, owned by nobody else.
        let prog = unsafe { OwnedFd::from_raw_fd(fd as i32) };

        let mut info = [0u32; 2];
        let mut get_info = InfoAttr {
            bpf_fd: prog.as_raw_fd().cast_unsigned(),
            info_len: size_of_val(&info) as u32,
            info: info.as_mut_ptr() as u64,
        };
        let rc = bpf(BPF_OBJ_GET_INFO_BY_FD, &mut get_info);
        assert_eq!(
            rc,
            0,
            "BPF_OBJ_GET_INFO_BY_FD: {}",
            std::io::Error::last_os_error()
        );
        (prog, info[1])
    }
}
