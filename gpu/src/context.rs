//! Device selection: one wgpu device and queue, created apart from the kernels that use them
//! so tests and hosts can inject their own ([`GpuContext::from_device`]).
//!
//! [`GpuContext::new`] picks the adapter whose name, driver or backend contains the
//! `MIRAGE_GPU_ADAPTER` substring (case-insensitive), or else the first adapter of the most
//! capable kind (discrete > integrated > virtual > CPU > other, enumeration order within a
//! kind), and requests every limit the adapter offers (lavapipe: 128 MiB per storage binding).

use crate::GpuError;

/// The environment variable that selects an adapter by substring.
pub const ADAPTER_ENV: &str = "MIRAGE_GPU_ADAPTER";

/// A wgpu device and queue plus what the adapter said about itself.
#[derive(Debug)]
pub struct GpuContext {
    device: wgpu::Device,
    queue: wgpu::Queue,
    info: wgpu::AdapterInfo,
}

impl GpuContext {
    /// Opens the adapter chosen by `MIRAGE_GPU_ADAPTER` (or the best one) and prints its
    /// description to stderr.
    ///
    /// # Errors
    /// [`GpuError::NoAdapter`] when there is no adapter or none matches the variable;
    /// [`GpuError::RequestDevice`] when the adapter refuses to create a device.
    pub fn new() -> Result<Self, GpuError> {
        let filter = std::env::var(ADAPTER_ENV).ok().filter(|s| !s.is_empty());
        let ctx = Self::with_filter(filter.as_deref())?;
        eprintln!("mirage-gpu: using adapter {}", ctx.describe());
        Ok(ctx)
    }

    /// Like [`GpuContext::new`] with an explicit substring filter (`None`: the best adapter),
    /// without printing.
    ///
    /// # Errors
    /// As [`GpuContext::new`].
    pub fn with_filter(filter: Option<&str>) -> Result<Self, GpuError> {
        let backends = wgpu::Backends::from_env().unwrap_or(wgpu::Backends::PRIMARY);
        let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
        desc.backends = backends;
        let instance = wgpu::Instance::new(desc);
        let adapters = pollster::block_on(instance.enumerate_adapters(backends));
        let describe = |a: &wgpu::Adapter| describe_info(&a.get_info());
        let available: Vec<String> = adapters.iter().map(describe).collect();
        let chosen = match filter {
            Some(want) => {
                let want_lc = want.to_lowercase();
                adapters
                    .into_iter()
                    .find(|a| describe(a).to_lowercase().contains(&want_lc))
            }
            None => adapters
                .into_iter()
                .enumerate()
                .min_by_key(|(index, a)| (kind_rank(a.get_info().device_type), *index))
                .map(|(_, a)| a),
        };
        let Some(adapter) = chosen else {
            return Err(GpuError::NoAdapter {
                requested: filter.map(str::to_owned),
                available,
            });
        };
        let info = adapter.get_info();
        let device_desc = wgpu::DeviceDescriptor {
            label: Some("mirage-gpu"),
            required_features: wgpu::Features::empty(),
            required_limits: adapter.limits(),
            experimental_features: wgpu::ExperimentalFeatures::disabled(),
            memory_hints: wgpu::MemoryHints::Performance,
            trace: wgpu::Trace::Off,
        };
        let (device, queue) = pollster::block_on(adapter.request_device(&device_desc))
            .map_err(|e| GpuError::RequestDevice(e.to_string()))?;
        Ok(Self::from_device(device, queue, info))
    }

    /// Wraps a device and queue the caller created.
    pub fn from_device(device: wgpu::Device, queue: wgpu::Queue, info: wgpu::AdapterInfo) -> Self {
        Self {
            device,
            queue,
            info,
        }
    }

    /// The device.
    pub fn device(&self) -> &wgpu::Device {
        &self.device
    }

    /// The queue.
    pub fn queue(&self) -> &wgpu::Queue {
        &self.queue
    }

    /// The adapter's own description.
    pub fn adapter_info(&self) -> &wgpu::AdapterInfo {
        &self.info
    }

    /// The limits the device was created with.
    pub fn limits(&self) -> wgpu::Limits {
        self.device.limits()
    }

    /// One line: name, kind, backend, driver and driver info.
    pub fn describe(&self) -> String {
        describe_info(&self.info)
    }
}

fn describe_info(info: &wgpu::AdapterInfo) -> String {
    format!(
        "{} ({:?}, {:?}, driver {} {})",
        info.name, info.device_type, info.backend, info.driver, info.driver_info
    )
}

fn kind_rank(kind: wgpu::DeviceType) -> u8 {
    match kind {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Cpu => 3,
        wgpu::DeviceType::Other => 4,
    }
}
