//! WebAssembly filters for L7 services: the runtime the HTTP proxy calls for each request.
//!
//! A filter is an untrusted module (ABI: `fulcrum_filter_sdk`, whose module doc is the
//! specification) uploaded over management and run with [wasmi], an interpreter that
//! needs no MMU. [`Filters`] holds at most one filter per service name:
//!
//! - [`Filters::install`] validates the module **on the MCU** (wasmi's validator, plus
//!   our own checks: size, no imports, one 32-bit memory within
//!   [`FilterLimits::memory_bytes`], the ABI's exports and version, buffers inside the
//!   memory), instantiates it and runs its setup under [`FilterLimits::fuel_at_install`].
//!   Only a completely built filter replaces the service's old one, by a move: a request
//!   sees the old filter or the new one, never a half-loaded one, and a refused module
//!   leaves the old filter running. Modules are not signed: whoever holds the
//!   management key may install code, as they may apply configs.
//! - [`Filters::run`] encodes the request into the filter's input buffer, calls it with
//!   [`FilterLimits::fuel_per_request`] fuel, and decodes its verdict. Out of fuel,
//!   traps, and malformed verdicts are [`FilterError`]s, never panics; the proxy then
//!   applies the service's fail-open or fail-closed policy. Memory cannot grow beyond the
//!   cap (`memory.grow` fails), and wasmi's value stack is capped
//!   ([`FilterLimits::stack_bytes`]): deep recursion traps.
//! - [`Filters::begin_upload`] / [`Filters::upload_chunk`] / [`Filters::commit_upload`]
//!   assemble a module arriving in management chunks in a bounded buffer and check its
//!   length and SHA-256 before installing it.
//!
//! Each filter has its own wasmi `Engine`: wasmi frees compiled code only when its engine
//! is dropped, so a shared engine would leak every replaced filter's code on a device
//! that swaps filters for months. Code is compiled eagerly at install (no lazy
//! compilation on the request path).
//!
//! Needs a global allocator (wasmi allocates): the NUCLEO image adds an `embedded-alloc`
//! heap with the `filters` feature. Our own buffers are reserved fallibly; wasmi's are
//! not, so the heap must hold the largest module's compiled code (a few times its size)
//! plus [`FilterLimits::memory_bytes`] and the value stack per filter.

use alloc::vec::Vec;
use core::fmt;

use fulcrum_filter_sdk::request::{self as abi_request};
use fulcrum_filter_sdk::{
    ABI_VERSION, EXPORT_ABI_VERSION, EXPORT_INPUT, EXPORT_INPUT_CAPACITY, EXPORT_MEMORY,
    EXPORT_ON_REQUEST, EXPORT_OUTPUT, EXPORT_OUTPUT_CAPACITY, MAX_EDITS,
};
use fulcrum_mgmt::message::{FilterInfo, MAX_FILTERS};
use fulcrum_model::config::Name;
use sha2::{Digest, Sha256};
use wasmi::{
    CompilationMode, Config, Engine, Linker, Memory, Module, Store, StoreLimits,
    StoreLimitsBuilder, TypedFunc,
};

pub use fulcrum_filter_sdk::request::FilterRequest;
pub use fulcrum_filter_sdk::verdict::{Action as FilterAction, EditOp, HeaderEdit, VerdictError};

/// What a filter decided about a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterOutcome {
    /// Allow, deny with a status, or route to a pool.
    pub action: FilterAction,
    /// Header edits to apply to the request, in order.
    pub set_headers: heapless::Vec<HeaderEdit, MAX_EDITS>,
    /// Fuel the filter used (about one unit per WebAssembly instruction).
    pub fuel_used: u64,
}

/// Why running a filter failed. The request is then handled by the service's fail
/// policy; the filter stays installed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterError {
    /// The filter used all its fuel (an endless or too long loop).
    OutOfFuel,
    /// The filter trapped (`unreachable`, a panic, out-of-bounds access, stack overflow...).
    Trap {
        /// WebAssembly's description of the trap.
        reason: &'static str,
    },
    /// The filter returned this negative status (its own error; see the ABI's `STATUS_*`).
    Failed(i32),
    /// The verdict length is beyond the filter's output buffer.
    OutputOutOfBounds(i32),
    /// The verdict did not decode.
    BadVerdict(VerdictError),
    /// The request line and headers do not fit the filter's input buffer.
    RequestTooLarge,
    /// A header name is not ASCII (the ABI gives filters ASCII names).
    NonAsciiHeaderName,
}

impl fmt::Display for FilterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FilterError::OutOfFuel => write!(f, "the filter ran out of fuel"),
            FilterError::Trap { reason } => write!(f, "the filter trapped: {reason}"),
            FilterError::Failed(code) => write!(f, "the filter reported error {code}"),
            FilterError::OutputOutOfBounds(n) => {
                write!(f, "verdict length {n} is beyond the output buffer")
            }
            FilterError::BadVerdict(e) => write!(f, "bad verdict: {e}"),
            FilterError::RequestTooLarge => {
                write!(f, "the request does not fit the filter's input buffer")
            }
            FilterError::NonAsciiHeaderName => write!(f, "a header name is not ASCII"),
        }
    }
}

/// A short text (errors from wasmi, cut to fit).
pub type ErrorText = heapless::String<120>;

/// Why a module was not installed. The service's old filter, if any, keeps running.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadError {
    /// The module is larger than [`FilterLimits::max_module_bytes`].
    TooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The service name is empty or too long.
    BadServiceName,
    /// Every filter slot is taken by another service.
    TooManyFilters,
    /// Not a valid WebAssembly module (or uses a feature this runtime does not enable).
    Invalid(ErrorText),
    /// The module imports something; filters get no imports.
    HasImports,
    /// The module has no memory exported as `memory`.
    NoMemory,
    /// The memory is 64-bit, shared, or there is more than one.
    UnsupportedMemory,
    /// The memory's initial size is over the cap.
    MemoryTooLarge {
        /// Its initial size in bytes.
        bytes: u64,
        /// The cap.
        cap: u32,
    },
    /// A required export is missing or has the wrong type.
    MissingExport(&'static str),
    /// The module implements another ABI version.
    WrongAbiVersion(i32),
    /// Instantiation failed (e.g. a data segment out of bounds).
    Instantiate(ErrorText),
    /// The start function or a setup export failed.
    Setup(FilterError),
    /// The input or output buffer is not inside the memory.
    BufferOutOfBounds,
    /// The appliance has no memory left for the module.
    OutOfMemory,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::TooLarge { size, max } => {
                write!(f, "module is {size} bytes, the limit is {max}")
            }
            LoadError::BadServiceName => write!(f, "invalid service name"),
            LoadError::TooManyFilters => {
                write!(f, "every filter slot is taken ({MAX_FILTERS})")
            }
            LoadError::Invalid(e) => write!(f, "not a valid WebAssembly module: {e}"),
            LoadError::HasImports => write!(f, "the module imports functions; filters get none"),
            LoadError::NoMemory => write!(f, "the module exports no memory named `memory`"),
            LoadError::UnsupportedMemory => {
                write!(f, "only one 32-bit, unshared memory is supported")
            }
            LoadError::MemoryTooLarge { bytes, cap } => {
                write!(f, "the module's memory is {bytes} bytes, the cap is {cap}")
            }
            LoadError::MissingExport(name) => {
                write!(f, "missing export `{name}` (or wrong type)")
            }
            LoadError::WrongAbiVersion(v) => {
                write!(
                    f,
                    "filter ABI version {v}, this appliance runs {ABI_VERSION}"
                )
            }
            LoadError::Instantiate(e) => write!(f, "instantiation failed: {e}"),
            LoadError::Setup(e) => write!(f, "setup failed: {e}"),
            LoadError::BufferOutOfBounds => {
                write!(f, "the input or output buffer lies outside the memory")
            }
            LoadError::OutOfMemory => write!(f, "not enough memory on the appliance"),
        }
    }
}

/// Why an upload step was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UploadError {
    /// No upload is in progress (or it was already committed or refused).
    NotStarted,
    /// The announced length is zero or over the module size limit.
    BadLength {
        /// Announced length.
        length: u32,
        /// The limit.
        max: usize,
    },
    /// A chunk does not continue where the upload is.
    WrongOffset {
        /// The chunk's offset.
        offset: u32,
        /// Bytes received so far.
        expected: u32,
    },
    /// A chunk goes beyond the announced length.
    Overflow,
    /// Commit before every byte arrived.
    Incomplete {
        /// Bytes received.
        received: u32,
        /// Announced length.
        length: u32,
    },
    /// The module's SHA-256 is not the announced one.
    DigestMismatch,
    /// The module was refused.
    Load(LoadError),
}

impl fmt::Display for UploadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UploadError::NotStarted => write!(f, "no filter upload in progress"),
            UploadError::BadLength { length, max } => {
                write!(f, "module length {length} is not in 1..={max}")
            }
            UploadError::WrongOffset { offset, expected } => {
                write!(f, "chunk at offset {offset}, expected {expected}")
            }
            UploadError::Overflow => write!(f, "chunk goes beyond the announced length"),
            UploadError::Incomplete { received, length } => {
                write!(f, "only {received} of {length} bytes received")
            }
            UploadError::DigestMismatch => {
                write!(f, "SHA-256 of the received module does not match")
            }
            UploadError::Load(e) => write!(f, "{e}"),
        }
    }
}

/// Limits every filter runs under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FilterLimits {
    /// Largest module accepted, bytes.
    pub max_module_bytes: usize,
    /// Most linear memory an instance may have (initial and grown), bytes.
    pub memory_bytes: u32,
    /// Fuel per request.
    pub fuel_per_request: u64,
    /// Fuel for instantiation, the start function and the setup exports.
    pub fuel_at_install: u64,
    /// wasmi's value stack cap per filter, bytes (locals and operands of every frame).
    pub stack_bytes: usize,
    /// Deepest call nesting.
    pub max_recursion_depth: usize,
}

impl FilterLimits {
    /// Defaults: 64 KiB modules and memory, 100k fuel per request (the example filters
    /// use 19k–25k on a typical browser request; the time this takes on the MCU is not
    /// measured yet, see docs/PERFORMANCE.md), 16 KiB value stack, 256 nested calls.
    /// The NUCLEO image uses smaller ones (`boards/nucleo-f767zi/src/heap.rs`).
    pub const DEFAULT: FilterLimits = FilterLimits {
        max_module_bytes: 64 * 1024,
        memory_bytes: 64 * 1024,
        fuel_per_request: 100_000,
        fuel_at_install: 1_000_000,
        stack_bytes: 16 * 1024,
        max_recursion_depth: 256,
    };
}

impl Default for FilterLimits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// One instantiated filter.
struct Filter {
    store: Store<StoreLimits>,
    memory: Memory,
    on_request: TypedFunc<i32, i32>,
    input: (usize, usize),
    output: (usize, usize),
    info: FilterInfo,
}

struct Upload {
    service: Name,
    length: u32,
    sha256: [u8; 32],
    bytes: Vec<u8>,
}

/// The installed filters, one per service name, and the upload in progress.
pub struct Filters {
    limits: FilterLimits,
    slots: Vec<Filter>,
    upload: Option<Upload>,
    free_memory: Option<fn() -> usize>,
}

/// Heap a module's compiled code takes per byte of module, at most: measured 9.4× for
/// the Rust-built example filters on x86-64 (docs/PERFORMANCE.md), so 12 with a margin;
/// on 32-bit targets wasmi's bytecode holds 4-byte instead of 8-byte handler pointers,
/// and 8 is an estimate (not measured on the MCU).
pub const CODE_BYTES_PER_MODULE_BYTE: usize = if cfg!(target_pointer_width = "64") {
    12
} else {
    8
};
/// Heap an instance takes besides its code, memory and value stack (engine, store,
/// tables, globals; about 6 KiB measured on x86-64), with a margin.
pub const INSTANCE_OVERHEAD_BYTES: usize = 8 * 1024;

impl Default for Filters {
    fn default() -> Self {
        Filters::new(FilterLimits::DEFAULT)
    }
}

impl Filters {
    /// No filters; modules are loaded and run under `limits`.
    pub const fn new(limits: FilterLimits) -> Self {
        Filters {
            limits,
            slots: Vec::new(),
            upload: None,
            free_memory: None,
        }
    }

    /// Tells the filters how much heap is free (on the MCU: the allocator's free
    /// bytes). wasmi cannot fail an allocation gracefully — running out of heap while
    /// compiling stops the firmware — so with a probe, [`Filters::install`] refuses a
    /// module ([`LoadError::OutOfMemory`]) unless the free heap covers an estimate of
    /// what it takes: [`CODE_BYTES_PER_MODULE_BYTE`] per module byte, its initial
    /// memory, the value stack cap and [`INSTANCE_OVERHEAD_BYTES`]. An estimate, not a
    /// guarantee.
    pub fn set_free_memory_probe(&mut self, probe: fn() -> usize) {
        self.free_memory = Some(probe);
    }

    /// The limits.
    pub fn limits(&self) -> &FilterLimits {
        &self.limits
    }

    /// Changes the limits: fuel per request applies at once, the others to modules
    /// installed from now on.
    pub fn set_limits(&mut self, limits: FilterLimits) {
        self.limits = limits;
        for f in &mut self.slots {
            f.info.fuel_per_request = limits.fuel_per_request;
        }
    }

    /// Compiles, checks and instantiates `wasm` and makes it `service`'s filter, replacing
    /// the old one only once the new one is complete.
    pub fn install(&mut self, service: &str, wasm: &[u8]) -> Result<FilterInfo, LoadError> {
        let name = Name::try_from(service).map_err(|_| LoadError::BadServiceName)?;
        if name.is_empty() {
            return Err(LoadError::BadServiceName);
        }
        let existing = self.slots.iter().position(|f| f.info.service == name);
        if existing.is_none() && self.slots.len() >= MAX_FILTERS {
            return Err(LoadError::TooManyFilters);
        }
        if existing.is_none() {
            self.slots
                .try_reserve(1)
                .map_err(|_| LoadError::OutOfMemory)?;
        }
        if wasm.len() > self.limits.max_module_bytes {
            return Err(LoadError::TooLarge {
                size: wasm.len(),
                max: self.limits.max_module_bytes,
            });
        }
        let memory = precheck(wasm, self.limits.memory_bytes)?;
        if let Some(free) = self.free_memory {
            let need = wasm
                .len()
                .saturating_mul(CODE_BYTES_PER_MODULE_BYTE)
                .saturating_add(memory as usize)
                .saturating_add(self.limits.stack_bytes)
                .saturating_add(INSTANCE_OVERHEAD_BYTES);
            if need > free() {
                return Err(LoadError::OutOfMemory);
            }
        }
        let filter = load(&self.limits, name, wasm)?;
        let info = filter.info.clone();
        match existing {
            Some(i) => self.slots[i] = filter,
            None => self.slots.push(filter),
        }
        info!("filter for {} installed ({} bytes)", service, wasm.len());
        Ok(info)
    }

    /// Removes `service`'s filter; whether it had one.
    pub fn remove(&mut self, service: &str) -> bool {
        let before = self.slots.len();
        self.slots.retain(|f| f.info.service.as_str() != service);
        before != self.slots.len()
    }

    /// The installed filters.
    pub fn list(&self) -> impl Iterator<Item = &FilterInfo> {
        self.slots.iter().map(|f| &f.info)
    }

    /// `service`'s filter.
    pub fn get(&self, service: &str) -> Option<&FilterInfo> {
        self.list().find(|i| i.service.as_str() == service)
    }

    /// Runs `service`'s filter on `req`; `None` if the service has no filter.
    pub fn run(
        &mut self,
        service: &str,
        req: &FilterRequest<'_>,
    ) -> Option<Result<FilterOutcome, FilterError>> {
        let fuel = self.limits.fuel_per_request;
        let filter = self
            .slots
            .iter_mut()
            .find(|f| f.info.service.as_str() == service)?;
        let result = filter.run(req, fuel);
        filter.info.runs += 1;
        match &result {
            Ok(outcome) => {
                filter.info.max_fuel_used = filter.info.max_fuel_used.max(outcome.fuel_used);
            }
            Err(e) => {
                filter.info.errors += 1;
                if *e == FilterError::OutOfFuel {
                    filter.info.max_fuel_used = filter.info.max_fuel_used.max(fuel);
                }
            }
        }
        Some(result)
    }

    /// Starts receiving a module for `service` (an unfinished upload is dropped).
    pub fn begin_upload(
        &mut self,
        service: &str,
        length: u32,
        sha256: [u8; 32],
    ) -> Result<(), UploadError> {
        self.upload = None;
        let service = Name::try_from(service)
            .ok()
            .filter(|n| !n.is_empty())
            .ok_or(UploadError::Load(LoadError::BadServiceName))?;
        let max = self.limits.max_module_bytes;
        if length == 0 || length as usize > max {
            return Err(UploadError::BadLength { length, max });
        }
        let mut bytes = Vec::new();
        bytes
            .try_reserve_exact(length as usize)
            .map_err(|_| UploadError::Load(LoadError::OutOfMemory))?;
        self.upload = Some(Upload {
            service,
            length,
            sha256,
            bytes,
        });
        Ok(())
    }

    /// Appends a chunk; returns the bytes received so far. A refused chunk ends the upload.
    pub fn upload_chunk(&mut self, offset: u32, data: &[u8]) -> Result<u32, UploadError> {
        let upload = self.upload.as_mut().ok_or(UploadError::NotStarted)?;
        let received = upload.bytes.len() as u32;
        let error = if offset != received {
            Some(UploadError::WrongOffset {
                offset,
                expected: received,
            })
        } else if data.len() > (upload.length - received) as usize {
            Some(UploadError::Overflow)
        } else {
            None
        };
        if let Some(e) = error {
            self.upload = None;
            return Err(e);
        }
        // Within the capacity reserved at `begin_upload`: no allocation.
        upload.bytes.extend_from_slice(data);
        Ok(upload.bytes.len() as u32)
    }

    /// Checks the upload's length and digest and installs it. The upload ends either way.
    pub fn commit_upload(&mut self) -> Result<FilterInfo, UploadError> {
        let upload = self.upload.take().ok_or(UploadError::NotStarted)?;
        let received = upload.bytes.len() as u32;
        if received != upload.length {
            return Err(UploadError::Incomplete {
                received,
                length: upload.length,
            });
        }
        if sha256(&upload.bytes) != upload.sha256 {
            return Err(UploadError::DigestMismatch);
        }
        self.install(&upload.service, &upload.bytes)
            .map_err(UploadError::Load)
    }

    /// The upload in progress: (service, bytes received, announced length).
    pub fn upload_progress(&self) -> Option<(&str, u32, u32)> {
        self.upload
            .as_ref()
            .map(|u| (u.service.as_str(), u.bytes.len() as u32, u.length))
    }
}

/// SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

fn text(args: fmt::Arguments<'_>) -> ErrorText {
    // A writer that keeps what fits, on one line (wasmi's messages may span several).
    struct Cut(ErrorText);
    impl fmt::Write for Cut {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            for c in s.chars() {
                let c = if c.is_whitespace() { ' ' } else { c };
                if c == ' ' && (self.0.is_empty() || self.0.ends_with(' ')) {
                    continue;
                }
                if self.0.push(c).is_err() {
                    break;
                }
            }
            Ok(())
        }
    }
    let mut out = Cut(ErrorText::new());
    let _ = fmt::write(&mut out, args);
    out.0
}

/// The checks wasmi does not make for us, before compiling: no imports, one memory of
/// at most `cap` bytes. Parse errors are left to wasmi's validator (better messages).
/// Returns the memory's initial size in bytes.
fn precheck(wasm: &[u8], cap: u32) -> Result<u64, LoadError> {
    let mut memories = 0;
    let mut initial = 0;
    for payload in wasmparser::Parser::new(0).parse_all(wasm) {
        let Ok(payload) = payload else {
            return Ok(initial);
        };
        match payload {
            wasmparser::Payload::ImportSection(imports) if imports.count() > 0 => {
                return Err(LoadError::HasImports);
            }
            wasmparser::Payload::MemorySection(section) => {
                for memory in section {
                    let Ok(memory) = memory else {
                        return Ok(initial);
                    };
                    memories += 1;
                    if memories > 1 || memory.memory64 || memory.shared {
                        return Err(LoadError::UnsupportedMemory);
                    }
                    let page_log2 = memory.page_size_log2.unwrap_or(16);
                    let bytes = if page_log2 > 16 || memory.initial > u64::from(u32::MAX) {
                        u64::MAX
                    } else {
                        memory.initial << page_log2
                    };
                    if bytes > u64::from(cap) {
                        return Err(LoadError::MemoryTooLarge { bytes, cap });
                    }
                    initial = bytes;
                }
            }
            _ => {}
        }
    }
    Ok(initial)
}

fn engine(limits: &FilterLimits) -> Engine {
    let mut config = Config::default();
    // Value stack cells are 8 bytes; wasmi panics if min > max, so keep min <= max.
    let max_stack = limits.stack_bytes.max(1024);
    config
        .consume_fuel(true)
        .wasm_custom_page_sizes(true)
        .wasm_multi_memory(false)
        .compilation_mode(CompilationMode::Eager)
        .set_max_recursion_depth(limits.max_recursion_depth.max(1))
        .set_min_stack_height(max_stack.min(1024))
        .set_max_stack_height(max_stack)
        .set_max_cached_stacks(1)
        .enforced_limits(wasmi::EnforcedLimits::strict());
    Engine::new(&config)
}

fn call_error(e: &wasmi::Error) -> FilterError {
    match e.as_trap_code() {
        Some(wasmi::TrapCode::OutOfFuel) => FilterError::OutOfFuel,
        Some(code) => FilterError::Trap {
            reason: code.trap_message(),
        },
        None => FilterError::Trap {
            reason: "execution failed",
        },
    }
}

/// Builds a complete filter from `wasm`, or says why not.
fn load(limits: &FilterLimits, service: Name, wasm: &[u8]) -> Result<Filter, LoadError> {
    let engine = engine(limits);
    let module =
        Module::new(&engine, wasm).map_err(|e| LoadError::Invalid(text(format_args!("{e}"))))?;
    if module.imports().len() > 0 {
        return Err(LoadError::HasImports);
    }
    if !matches!(
        module.get_export(EXPORT_MEMORY),
        Some(wasmi::ExternType::Memory(_))
    ) {
        return Err(LoadError::NoMemory);
    }
    let store_limits = StoreLimitsBuilder::new()
        .memory_size(limits.memory_bytes as usize)
        .memories(1)
        .tables(1)
        .table_elements(1024)
        .instances(1)
        .build();
    let mut store = Store::new(&engine, store_limits);
    store.limiter(|l| l);
    store
        .set_fuel(limits.fuel_at_install)
        .map_err(|_| LoadError::Setup(FilterError::OutOfFuel))?;
    let instance = Linker::<StoreLimits>::new(&engine)
        .instantiate_and_start(&mut store, &module)
        .map_err(|e| match e.as_trap_code() {
            Some(_) => LoadError::Setup(call_error(&e)),
            None => LoadError::Instantiate(text(format_args!("{e}"))),
        })?;
    let memory = instance
        .get_memory(&store, EXPORT_MEMORY)
        .ok_or(LoadError::NoMemory)?;
    let query = |store: &mut Store<StoreLimits>, name: &'static str| -> Result<i32, LoadError> {
        let f = instance
            .get_typed_func::<(), i32>(&*store, name)
            .map_err(|_| LoadError::MissingExport(name))?;
        f.call(store, ())
            .map_err(|e| LoadError::Setup(call_error(&e)))
    };
    let on_request = instance
        .get_typed_func::<i32, i32>(&store, EXPORT_ON_REQUEST)
        .map_err(|_| LoadError::MissingExport(EXPORT_ON_REQUEST))?;
    let version = query(&mut store, EXPORT_ABI_VERSION)?;
    if version != ABI_VERSION as i32 {
        return Err(LoadError::WrongAbiVersion(version));
    }
    let mut buffer = |ptr: &'static str, cap: &'static str| -> Result<(usize, usize), LoadError> {
        let (ptr, cap) = (query(&mut store, ptr)?, query(&mut store, cap)?);
        let (ptr, cap) = (ptr as u32 as usize, cap as u32 as usize);
        let end = ptr.checked_add(cap).ok_or(LoadError::BufferOutOfBounds)?;
        if cap == 0 || end > memory.data_size(&store) {
            return Err(LoadError::BufferOutOfBounds);
        }
        Ok((ptr, cap))
    };
    let input = buffer(EXPORT_INPUT, EXPORT_INPUT_CAPACITY)?;
    let output = buffer(EXPORT_OUTPUT, EXPORT_OUTPUT_CAPACITY)?;
    let memory_bytes = memory.data_size(&store);
    if memory_bytes > limits.memory_bytes as usize {
        return Err(LoadError::MemoryTooLarge {
            bytes: memory_bytes as u64,
            cap: limits.memory_bytes,
        });
    }
    Ok(Filter {
        store,
        memory,
        on_request,
        input,
        output,
        info: FilterInfo {
            service,
            size: wasm.len() as u32,
            sha256: sha256(wasm),
            memory_bytes: memory_bytes as u32,
            fuel_per_request: limits.fuel_per_request,
            runs: 0,
            errors: 0,
            max_fuel_used: 0,
        },
    })
}

impl Filter {
    fn run(&mut self, req: &FilterRequest<'_>, fuel: u64) -> Result<FilterOutcome, FilterError> {
        let (in_ptr, in_cap) = self.input;
        // The memory never shrinks, so the buffers checked at install are still inside it;
        // `get_mut` keeps that an error rather than a panic all the same.
        let input = self
            .memory
            .data_mut(&mut self.store)
            .get_mut(in_ptr..in_ptr + in_cap)
            .ok_or(FilterError::Trap {
                reason: "input buffer outside memory",
            })?;
        let len = abi_request::encode(req, input).map_err(|e| match e {
            abi_request::EncodeError::TooLarge => FilterError::RequestTooLarge,
            abi_request::EncodeError::NonAsciiHeaderName => FilterError::NonAsciiHeaderName,
        })?;
        self.store
            .set_fuel(fuel)
            .map_err(|_| FilterError::OutOfFuel)?;
        let result = self.on_request.call(&mut self.store, len as i32);
        let fuel_used = fuel.saturating_sub(self.store.get_fuel().unwrap_or(0));
        let n = result.map_err(|e| call_error(&e))?;
        if n < 0 {
            return Err(FilterError::Failed(n));
        }
        let (out_ptr, out_cap) = self.output;
        if n as usize > out_cap {
            return Err(FilterError::OutputOutOfBounds(n));
        }
        let bytes = self
            .memory
            .data(&self.store)
            .get(out_ptr..out_ptr + n as usize)
            .ok_or(FilterError::OutputOutOfBounds(n))?;
        let verdict =
            fulcrum_filter_sdk::Verdict::decode(bytes).map_err(FilterError::BadVerdict)?;
        Ok(FilterOutcome {
            action: verdict.action,
            set_headers: verdict.edits,
            fuel_used,
        })
    }
}
