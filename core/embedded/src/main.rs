//! mirage on a Cortex-M4F: the paper's sampler with the Hal detector (Aithal et al. 2024,
//! papers.md §1.2) over a `.mrg` model embedded in flash, printing each sample and its Hal
//! score over semihosting. `core/embedded/run-qemu.sh` runs it under QEMU (mps2-an386) and
//! compares its lines with the host running the same code (`core/examples/embedded_ref.rs`).
//!
//! Build with `MIRAGE_MODEL=/abs/path/model.mrg` (f32, q8 or q16; D = 2) and optionally
//! `MIRAGE_SAMPLES=n` (default 4). After the samples it prints the stack high-water mark,
//! measured by painting the stack with a pattern at reset and scanning for the deepest
//! overwritten word.
#![no_std]
#![no_main]

mod run;

use core::fmt::Write;

use cortex_m_rt::entry;
use cortex_m_semihosting::{debug, hio};

/// The model file, 8-byte aligned as the zero-copy parser requires.
#[repr(C, align(8))]
struct Aligned<B: ?Sized>(B);

static MODEL: &Aligned<[u8]> = &Aligned(*include_bytes!(env!("MIRAGE_MODEL")));

/// Samples per run (compile-time `MIRAGE_SAMPLES`, default 4).
const SAMPLES: u32 = match option_env!("MIRAGE_SAMPLES") {
    Some(s) => parse_u32(s),
    None => 4,
};

const fn parse_u32(s: &str) -> u32 {
    let bytes = s.as_bytes();
    let mut i = 0;
    let mut v = 0u32;
    while i < bytes.len() {
        v = v * 10 + (bytes[i] - b'0') as u32;
        i += 1;
    }
    v
}

/// The pattern painted over the free stack.
const PAINT: u32 = 0xDEAD_BEEF;
/// Stack painted below the current frame at reset (bytes; the program needs ≈ 6 KB).
const PAINT_BYTES: usize = 64 * 1024;

#[entry]
fn main() -> ! {
    let top = stack::paint(PAINT_BYTES);
    let ok = match hio::hstdout() {
        Ok(mut out) => {
            let result = run::run(&MODEL.0, SAMPLES, &mut HostOut(&mut out));
            let used = stack::high_water(top, PAINT_BYTES);
            match result {
                Ok(()) => {
                    let _ = writeln!(HostOut(&mut out), "stack high-water {used} bytes");
                    true
                }
                Err(e) => {
                    let _ = writeln!(HostOut(&mut out), "error: {e}");
                    false
                }
            }
        }
        Err(()) => false,
    };
    debug::exit(if ok {
        debug::EXIT_SUCCESS
    } else {
        debug::EXIT_FAILURE
    });
    #[allow(clippy::empty_loop)]
    loop {}
}

/// `core::fmt::Write` over the semihosting stdout.
struct HostOut<'a>(&'a mut hio::HostStream);

impl Write for HostOut<'_> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        self.0.write_all(s.as_bytes()).map_err(|_| core::fmt::Error)
    }
}

/// Stack painting: the only unsafe code of the example (raw reads and writes below the
/// current stack pointer, inside the RAM region that cortex-m-rt gives the stack).
mod stack {
    use core::arch::asm;

    fn sp() -> usize {
        let sp: usize;
        // SAFETY: reads the stack pointer register; no memory access.
        unsafe { asm!("mov {}, sp", out(reg) sp) };
        sp
    }

    /// Paints `bytes` below the current stack pointer (minus a 256-byte guard for this
    /// frame) with `PAINT`; returns the painted region's top address.
    #[inline(never)]
    pub fn paint(bytes: usize) -> usize {
        let top = (sp() - 256) & !3;
        let mut addr = top - bytes;
        while addr < top {
            // SAFETY: [top − bytes, top) lies in the stack region below every live frame
            // (the program's stack use is far below `bytes`, and RAM is 4 MiB).
            unsafe { core::ptr::write_volatile(addr as *mut u32, super::PAINT) };
            addr += 4;
        }
        top
    }

    unsafe extern "C" {
        /// The initial stack pointer (top of RAM), defined by cortex-m-rt's link.x.
        static _stack_start: u32;
    }

    /// Stack bytes used since reset: from the initial stack pointer down to the deepest
    /// painted word that was overwritten.
    pub fn high_water(top: usize, bytes: usize) -> usize {
        let bottom = top - bytes;
        let mut addr = bottom;
        while addr < top {
            // SAFETY: the same region `paint` wrote; only read here.
            if unsafe { core::ptr::read_volatile(addr as *const u32) } != super::PAINT {
                break;
            }
            addr += 4;
        }
        let start = core::ptr::addr_of!(_stack_start) as usize;
        start - addr
    }
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    debug::exit(debug::EXIT_FAILURE);
    #[allow(clippy::empty_loop)]
    loop {}
}
