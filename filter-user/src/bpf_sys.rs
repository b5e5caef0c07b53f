//! The bpf(2) commands that aya 0.14 does not offer for objects it did not load: opening a
//! pinned object as a plain descriptor, putting a program given by descriptor into a link, and
//! reading where a link is attached (aya's `LinkInfo` leaves out the interface).

use std::{
    ffi::CString,
    io, mem,
    os::{
        fd::{AsRawFd as _, BorrowedFd, FromRawFd as _, OwnedFd},
        unix::ffi::OsStrExt as _,
    },
    path::Path,
};

use aya_obj::generated::{bpf_attach_type, bpf_attr, bpf_cmd, bpf_link_info, bpf_link_type};

fn sys_bpf(cmd: bpf_cmd, attr: &mut bpf_attr) -> io::Result<libc::c_long> {
    // SAFETY: `attr` is a valid, fully initialised `bpf_attr` of the size passed; the kernel
    // reads the fields of `cmd` and writes nothing back for these commands.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd as libc::c_long,
            std::ptr::from_mut(attr),
            size_of::<bpf_attr>(),
        )
    };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Opens the object pinned at `path` (`BPF_OBJ_GET`).
pub fn obj_get(path: &Path) -> io::Result<OwnedFd> {
    let path = CString::new(path.as_os_str().as_bytes())?;
    // SAFETY: all-zero is a valid `bpf_attr` (a union of plain integers).
    let mut attr: bpf_attr = unsafe { mem::zeroed() };
    attr.__bindgen_anon_4.pathname = path.as_ptr() as u64;
    let fd = sys_bpf(bpf_cmd::BPF_OBJ_GET, &mut attr)?;
    let fd = i32::try_from(fd).map_err(|_| io::Error::other("BPF_OBJ_GET: no descriptor"))?;
    // SAFETY: the kernel just gave us this descriptor; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Makes the link `link` run program `program` (`BPF_LINK_UPDATE`).
pub fn link_update(link: BorrowedFd<'_>, program: BorrowedFd<'_>) -> io::Result<()> {
    let fd = |fd: BorrowedFd<'_>| {
        u32::try_from(fd.as_raw_fd()).map_err(|_| io::Error::other("negative descriptor"))
    };
    // SAFETY: all-zero is a valid `bpf_attr` (a union of plain integers).
    let mut attr: bpf_attr = unsafe { mem::zeroed() };
    attr.link_update.link_fd = fd(link)?;
    attr.link_update.__bindgen_anon_1.new_prog_fd = fd(program)?;
    sys_bpf(bpf_cmd::BPF_LINK_UPDATE, &mut attr).map(drop)
}

/// Where a link is attached, as the kernel tells (`BPF_OBJ_GET_INFO_BY_FD`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkTarget {
    /// The program the link runs.
    pub prog_id: u32,
    /// The interface of an XDP or tcx link: 0 once the link is severed (`bpftool link detach`)
    /// or its interface is gone.
    pub ifindex: u32,
    /// Whether it is an XDP link (`false`: a tcx link, or another kind).
    pub xdp: bool,
}

/// Reads what the link `link` runs and where (`BPF_OBJ_GET_INFO_BY_FD` on a link).
pub fn link_info(link: BorrowedFd<'_>) -> io::Result<LinkTarget> {
    // SAFETY: all-zero is a valid `bpf_link_info` (plain integers and unions of them).
    let mut info: bpf_link_info = unsafe { mem::zeroed() };
    // SAFETY: all-zero is a valid `bpf_attr` (a union of plain integers).
    let mut attr: bpf_attr = unsafe { mem::zeroed() };
    attr.info.bpf_fd =
        u32::try_from(link.as_raw_fd()).map_err(|_| io::Error::other("negative descriptor"))?;
    attr.info.info = std::ptr::from_mut(&mut info) as u64;
    attr.info.info_len = u32::try_from(size_of::<bpf_link_info>()).unwrap_or(u32::MAX);
    sys_bpf(bpf_cmd::BPF_OBJ_GET_INFO_BY_FD, &mut attr)?;
    let xdp = info.type_ == bpf_link_type::BPF_LINK_TYPE_XDP as u32;
    let tcx = info.type_ == bpf_link_type::BPF_LINK_TYPE_TCX as u32;
    // SAFETY: the kernel filled the member of the union that the link's type names.
    let ifindex = unsafe {
        if xdp {
            info.__bindgen_anon_1.xdp.ifindex
        } else if tcx {
            info.__bindgen_anon_1.tcx.ifindex
        } else {
            0
        }
    };
    Ok(LinkTarget {
        prog_id: info.prog_id,
        ifindex,
        xdp,
    })
}

/// The XDP attach type (`BPF_XDP`), for [`link_create`].
pub const ATTACH_XDP: bpf_attach_type = bpf_attach_type::BPF_XDP;
/// The tcx egress attach type (`BPF_TCX_EGRESS`), for [`link_create`].
pub const ATTACH_TCX_EGRESS: bpf_attach_type = bpf_attach_type::BPF_TCX_EGRESS;

/// Attaches program `program` to interface `ifindex` with a new link (`BPF_LINK_CREATE`):
/// `ATTACH_XDP` with the XDP mode in `flags`, or `ATTACH_TCX_EGRESS` (appended after the
/// interface's other tcx programs).
pub fn link_create(
    program: BorrowedFd<'_>,
    ifindex: u32,
    attach_type: bpf_attach_type,
    flags: u32,
) -> io::Result<OwnedFd> {
    // SAFETY: all-zero is a valid `bpf_attr` (a union of plain integers).
    let mut attr: bpf_attr = unsafe { mem::zeroed() };
    attr.link_create.__bindgen_anon_1.prog_fd =
        u32::try_from(program.as_raw_fd()).map_err(|_| io::Error::other("negative descriptor"))?;
    attr.link_create.__bindgen_anon_2.target_ifindex = ifindex;
    attr.link_create.attach_type = attach_type as u32;
    attr.link_create.flags = flags;
    let fd = sys_bpf(bpf_cmd::BPF_LINK_CREATE, &mut attr)?;
    let fd = i32::try_from(fd).map_err(|_| io::Error::other("BPF_LINK_CREATE: no descriptor"))?;
    // SAFETY: the kernel just gave us this descriptor; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Pins the object `fd` at `path` (`BPF_OBJ_PIN`).
pub fn obj_pin(fd: BorrowedFd<'_>, path: &Path) -> io::Result<()> {
    let path = CString::new(path.as_os_str().as_bytes())?;
    // SAFETY: all-zero is a valid `bpf_attr` (a union of plain integers).
    let mut attr: bpf_attr = unsafe { mem::zeroed() };
    attr.__bindgen_anon_4.pathname = path.as_ptr() as u64;
    attr.__bindgen_anon_4.bpf_fd =
        u32::try_from(fd.as_raw_fd()).map_err(|_| io::Error::other("negative descriptor"))?;
    sys_bpf(bpf_cmd::BPF_OBJ_PIN, &mut attr).map(drop)
}
