//! mirage on a Cortex-M4F: the paper's sampler with the Hal detector (Aithal et al. 2024,
//! papers.md §1.2) over a `.mrg` model embedded in flash, printing each sample and its Hal
//! score over semihosting. `core/embedded/run-qemu.sh` runs it under QEMU (mps2-an386) and
//! compares its lines with the host running the same code (`core/examples/embedded_ref.rs`).
//!
//! Build with `MIRAGE_MODEL=/abs/path/model.mrg` (f32, q8 or q16; D = 2) and optionally
//! `MIRAGE_SAMPLES=n` (default 4); build.rs reads the model's kind so that only that network's
//! code is linked. After the samples it prints the stack high-water mark, measured by painting
//! the stack with a pattern at reset and scanning for the deepest overwritten word.
//!
//! Instruction counts: SysTick runs from the processor clock with a wrap counter, and each
//! trajectory's `cost` line gives its SysTick ticks. Under `qemu-system-arm -icount shift=0`
//! QEMU's virtual clock advances by exactly 1 ns per guest instruction, so ticks are
//! proportional to instructions; the `calibration` line times a loop of a known instruction
//! count (two per iteration) to give the ratio.
#![no_std]
#![no_main]

mod run;

use core::fmt::Write;

use cortex_m_rt::{entry, exception};
use cortex_m_semihosting::{debug, hio};

/// The model file, 8-byte aligned as the zero-copy parser requires.
#[repr(C, align(8))]
struct Aligned<B: ?Sized>(B);

static MODEL: &Aligned<[u8]> = &Aligned(*include_bytes!(env!("MIRAGE_MODEL")));

/// The weight formats this build links (build.rs: the embedded model's kind code).
const KINDS: run::Kinds = match parse_u32(env!("MIRAGE_MODEL_KIND")) {
    1 => run::Kinds {
        f32: true,
        fixed: false,
    },
    _ => run::Kinds {
        f32: false,
        fixed: true,
    },
};

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
    let top = raw::paint(PAINT_BYTES);
    let counting = ticks::start();
    let ok = match hio::hstdout() {
        Ok(mut out) => {
            if counting {
                let (iterations, ticks) = ticks::calibrate();
                let ticks = u32::try_from(ticks).unwrap_or(u32::MAX);
                let _ = writeln!(
                    HostOut(&mut out),
                    "calibration {} instructions {ticks} ticks",
                    2 * iterations
                );
            }
            let clock = if counting { ticks::now } else { ticks::none };
            let result = run::run(&MODEL.0, SAMPLES, KINDS, clock, &mut HostOut(&mut out));
            let used = raw::high_water(top, PAINT_BYTES);
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

/// A 64-bit tick count from SysTick (24-bit down-counter on the processor clock, reloading at
/// 2²⁴ − 1) and a wrap counter bumped by its exception.
mod ticks {
    use core::sync::atomic::{AtomicU32, Ordering};

    use cortex_m::peripheral::syst::SystClkSource;
    use cortex_m::peripheral::{SCB, SYST};

    const RELOAD: u32 = 0x00FF_FFFF;
    pub static WRAPS: AtomicU32 = AtomicU32::new(0);

    /// Starts the counter; false if the core peripherals were already taken.
    pub fn start() -> bool {
        let Some(mut p) = cortex_m::Peripherals::take() else {
            return false;
        };
        p.SYST.set_clock_source(SystClkSource::Core);
        p.SYST.set_reload(RELOAD);
        p.SYST.clear_current();
        p.SYST.enable_interrupt();
        p.SYST.enable_counter();
        // The cleared counter reads 0 until its first tick loads RELOAD.
        while SYST::get_current() == 0 {}
        true
    }

    /// Ticks since `start`: wraps · 2²⁴ + elapsed in the current period, read until no wrap
    /// happened (or is pending) around the read.
    pub fn now() -> Option<u64> {
        loop {
            let before = WRAPS.load(Ordering::SeqCst);
            let current = SYST::get_current();
            let after = WRAPS.load(Ordering::SeqCst);
            if before == after && !SCB::is_pendst_pending() {
                let wraps = u64::from(before);
                return Some(wraps * u64::from(RELOAD + 1) + u64::from(RELOAD - current));
            }
        }
    }

    /// The clock of a build whose counter did not start.
    pub fn none() -> Option<u64> {
        None
    }

    /// Times a loop of `subs`/`bne` pairs: (iterations, ticks).
    pub fn calibrate() -> (u32, u64) {
        const ITERATIONS: u32 = 1_000_000;
        let start = now().unwrap_or(0);
        super::raw::spin(ITERATIONS);
        (ITERATIONS, now().unwrap_or(0).wrapping_sub(start))
    }
}

#[exception]
fn SysTick() {
    ticks::WRAPS.fetch_add(1, core::sync::atomic::Ordering::SeqCst);
}

/// The only unsafe code of the example: stack painting (raw reads and writes below the current
/// stack pointer, inside the RAM region that cortex-m-rt gives the stack) and the calibration
/// loop.
mod raw {
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

    /// Runs `iterations` iterations of a two-instruction loop (`subs`, `bne`).
    #[inline(never)]
    pub fn spin(iterations: u32) {
        // SAFETY: register-only arithmetic and a local branch; no memory access.
        unsafe {
            asm!(
                "2:",
                "subs {n}, #1",
                "bne 2b",
                n = inout(reg) iterations => _,
                options(nomem, nostack),
            )
        };
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
