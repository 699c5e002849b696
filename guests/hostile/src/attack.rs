//! The attacks and how they share the vCPU.
//!
//! Every enabled attack runs in turn for one slice ([`SLICE_US`]) of TSC time, round robin,
//! so that `attack=all` interleaves them all in one loop and a single attack simply runs
//! without a break. The crash is not a slice: it happens once, at its time.

/// How long each enabled attack runs before the next one's turn.
pub const SLICE_US: u64 = 1000;

/// One kind of hostility.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Attack {
    /// Spin in ring 3: the vCPU never sleeps.
    Cpu = 0,
    /// Ring-3 copies over a buffer much larger than the last-level cache.
    Membw = 1,
    /// As many VM exits per second as possible (see [`ExitKind`]).
    Exits = 2,
    /// Long console lines as fast as the console takes them.
    Console = 3,
    /// Paravirtual calls the monitor must refuse, and doorbells it must ignore.
    Pvcalls = 4,
    /// A triple fault (at `crash_after_ms`, default at once).
    Crash = 5,
}

impl Attack {
    /// Every attack, in the order they take turns and are named.
    pub const ALL: [Attack; 6] = [
        Attack::Cpu,
        Attack::Membw,
        Attack::Exits,
        Attack::Console,
        Attack::Pvcalls,
        Attack::Crash,
    ];

    /// The attack's name on the command line and in reports.
    pub fn name(self) -> &'static [u8] {
        match self {
            Attack::Cpu => b"cpu",
            Attack::Membw => b"membw",
            Attack::Exits => b"exits",
            Attack::Console => b"console",
            Attack::Pvcalls => b"pvcalls",
            Attack::Crash => b"crash",
        }
    }

    /// The attack called `name`.
    pub fn from_name(name: &[u8]) -> Option<Attack> {
        Attack::ALL.into_iter().find(|a| a.name() == name)
    }

    /// Whether the attack takes turns in slices (all but the crash).
    pub fn is_sliced(self) -> bool {
        self != Attack::Crash
    }
}

/// A set of attacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Attacks(u8);

impl Attacks {
    /// No attack.
    pub const NONE: Attacks = Attacks(0);

    /// Every attack but the crash (`attack=all`; the crash joins only when `crash_after_ms`
    /// is given).
    pub fn all_sliced() -> Attacks {
        Attack::ALL
            .into_iter()
            .filter(|a| a.is_sliced())
            .fold(Attacks::NONE, Attacks::with)
    }

    /// This set and `attack`.
    pub fn with(self, attack: Attack) -> Attacks {
        Attacks(self.0 | 1 << attack as u8)
    }

    /// The attacks of both sets.
    pub fn union(self, other: Attacks) -> Attacks {
        Attacks(self.0 | other.0)
    }

    /// Whether `attack` is in the set.
    pub fn contains(self, attack: Attack) -> bool {
        self.0 & (1 << attack as u8) != 0
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The attacks that take turns in slices, in turn order.
    pub fn sliced(self) -> impl Iterator<Item = Attack> {
        Attack::ALL
            .into_iter()
            .filter(move |&a| a.is_sliced() && self.contains(a))
    }

    /// The next sliced attack after `current` in turn order, wrapping around; `None` when
    /// the set has no sliced attack.
    pub fn next_after(self, current: Option<Attack>) -> Option<Attack> {
        let start = current.map_or(0, |a| a as usize + 1);
        (0..Attack::ALL.len())
            .map(|i| Attack::ALL[(start + i) % Attack::ALL.len()])
            .find(|&a| a.is_sliced() && self.contains(a))
    }

    /// Calls `f` with each attack's name, in order, for formatting `a,b,c`.
    pub fn for_each_name(self, mut f: impl FnMut(&'static [u8])) {
        for attack in Attack::ALL {
            if self.contains(attack) {
                f(attack.name());
            }
        }
    }
}

/// What the exit storm does to leave the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitKind {
    /// A 4-byte store from ring 3 to a guest-physical address nothing is mapped at: KVM
    /// decodes it and exits to the monitor as MMIO, without the guest's ring 0.
    Mmio,
    /// A byte `out` to port 0x80 (POST; no device, no log line): from ring 3 a #GP on
    /// software KVM (IOPL ignored), so the kernel performs it in ring 0 (emulated), then the
    /// exit to the monitor.
    Port,
    /// The cheapest paravirtual call, `AbiVersion`: a doorbell `out`, as [`ExitKind::Port`].
    Doorbell,
    /// `cpuid` from ring 3: answered by KVM itself (no monitor) where it traps.
    Cpuid,
    /// All of the above in turn, one each.
    Mix,
}

impl ExitKind {
    /// Every kind, as named on the command line.
    pub const ALL: [ExitKind; 5] = [
        ExitKind::Mmio,
        ExitKind::Port,
        ExitKind::Doorbell,
        ExitKind::Cpuid,
        ExitKind::Mix,
    ];

    /// The name on the command line and in reports.
    pub fn name(self) -> &'static [u8] {
        match self {
            ExitKind::Mmio => b"mmio",
            ExitKind::Port => b"port",
            ExitKind::Doorbell => b"doorbell",
            ExitKind::Cpuid => b"cpuid",
            ExitKind::Mix => b"mix",
        }
    }

    /// The kind called `name`.
    pub fn from_name(name: &[u8]) -> Option<ExitKind> {
        ExitKind::ALL.into_iter().find(|k| k.name() == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_attack_is_found_by_its_name() {
        for attack in Attack::ALL {
            assert_eq!(Attack::from_name(attack.name()), Some(attack));
        }
    }

    #[test]
    fn all_means_every_attack_but_the_crash() {
        let all = Attacks::all_sliced();

        assert_eq!(
            Attack::ALL.map(|a| all.contains(a)),
            [true, true, true, true, true, false]
        );
    }

    #[test]
    fn turns_go_round_the_sliced_attacks_in_order() {
        let set = Attacks::NONE
            .with(Attack::Console)
            .with(Attack::Cpu)
            .with(Attack::Crash);

        let turns = [
            set.next_after(None),
            set.next_after(Some(Attack::Cpu)),
            set.next_after(Some(Attack::Console)),
        ];

        assert_eq!(
            turns,
            [Some(Attack::Cpu), Some(Attack::Console), Some(Attack::Cpu)]
        );
    }

    #[test]
    fn crash_alone_has_no_turns() {
        let set = Attacks::NONE.with(Attack::Crash);

        assert_eq!((set.next_after(None), set.sliced().count()), (None, 0));
    }

    #[test]
    fn names_are_listed_in_order() {
        let mut names = Vec::new();

        Attacks::NONE
            .with(Attack::Pvcalls)
            .with(Attack::Membw)
            .for_each_name(|n| names.push(n));

        assert_eq!(names, [&b"membw"[..], &b"pvcalls"[..]]);
    }

    #[test]
    fn every_exit_kind_is_found_by_its_name() {
        for kind in ExitKind::ALL {
            assert_eq!(ExitKind::from_name(kind.name()), Some(kind));
        }
    }
}
