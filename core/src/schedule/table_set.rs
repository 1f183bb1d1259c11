//! A set of schedule tables: bit k stands for [`Table::ALL`]`[k]`.
//!
//! A model file may store only the tables its sampler reads (the paper's ε-form DDPM step
//! reads five of the eighteen, which saves 52 KB of flash at T = 1000); a [`Schedule`] over
//! such a file knows which tables it has, and [`SamplerConfig::tables`] says which ones a
//! configuration needs, so a step can refuse an absent table instead of reading one.
//!
//! [`Schedule`]: super::Schedule
//! [`SamplerConfig::tables`]: crate::sampler::SamplerConfig::tables

use super::{TABLE_COUNT, Table};
use crate::error::Error;

/// A set of [`Table`]s, stored as a bit mask (bit k = `Table::ALL[k]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TableSet(u32);

impl TableSet {
    /// No table.
    pub const EMPTY: Self = Self(0);
    /// All [`TABLE_COUNT`] tables.
    pub const ALL: Self = Self((1 << TABLE_COUNT) - 1);

    /// The set holding exactly `tables` (repeats allowed).
    pub const fn of(tables: &[Table]) -> Self {
        let mut set = Self::EMPTY;
        let mut rest = tables;
        while let [first, tail @ ..] = rest {
            set = set.with(*first);
            rest = tail;
        }
        set
    }

    /// This set with `table` added.
    pub const fn with(self, table: Table) -> Self {
        Self(self.0 | 1 << table as u32)
    }

    /// The union of both sets.
    pub const fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    /// Whether `table` is in the set.
    pub const fn contains(self, table: Table) -> bool {
        self.0 & 1 << table as u32 != 0
    }

    /// Number of tables in the set.
    pub const fn len(self) -> usize {
        self.0.count_ones() as usize
    }

    /// Whether the set is empty.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The bit mask.
    pub const fn bits(self) -> u32 {
        self.0
    }

    /// The set with mask `bits`.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] if a bit at or above [`TABLE_COUNT`] is set.
    pub const fn from_bits(bits: u32) -> Result<Self, Error> {
        if bits & !Self::ALL.0 != 0 {
            return Err(Error::InvalidParameter(
                "table set: only bits 0..18 name schedule tables",
            ));
        }
        Ok(Self(bits))
    }

    /// How many of the set's tables come before `table` in storage order (its position in a
    /// table-major buffer holding exactly this set).
    pub const fn rank(self, table: Table) -> usize {
        let below = (1u32 << table as u32) - 1;
        (self.0 & below).count_ones() as usize
    }

    /// The first table (in storage order) of `needed` that is not in this set.
    ///
    /// # Errors
    /// [`Error::MissingTable`] naming that table.
    pub fn require(self, needed: Self) -> Result<(), Error> {
        let missing = needed.0 & !self.0;
        if missing == 0 {
            return Ok(());
        }
        let first = missing.trailing_zeros() as usize;
        let table = Table::ALL.get(first).copied().unwrap_or(Table::ModelT);
        Err(Error::MissingTable(table.name()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn membership_rank_and_count() {
        let set = TableSet::of(&[Table::SigmaLarge, Table::Beta, Table::EpsCoef, Table::Beta]);
        assert_eq!(set.len(), 3);
        assert!(set.contains(Table::Beta) && set.contains(Table::SigmaLarge));
        assert!(!set.contains(Table::ModelT) && !set.contains(Table::AlphaBar));
        // Positions in a buffer holding only this set, in storage order.
        assert_eq!(set.rank(Table::Beta), 0);
        assert_eq!(set.rank(Table::EpsCoef), 1);
        assert_eq!(set.rank(Table::SigmaLarge), 2);
        assert_eq!(TableSet::ALL.len(), TABLE_COUNT);
        for (k, &table) in Table::ALL.iter().enumerate() {
            assert_eq!(TableSet::ALL.rank(table), k);
            assert_eq!(table as usize, k);
        }
        assert!(TableSet::EMPTY.is_empty() && !set.is_empty());
        assert_eq!(TableSet::EMPTY.with(Table::Beta).union(set), set);
    }

    #[test]
    fn bits_round_trip_and_reject_unknown_tables() {
        for bits in [0u32, 1, 0b1010, TableSet::ALL.bits()] {
            assert_eq!(TableSet::from_bits(bits).map(TableSet::bits), Ok(bits));
        }
        for bits in [1u32 << TABLE_COUNT, 1 << 31, u32::MAX] {
            assert!(matches!(
                TableSet::from_bits(bits),
                Err(Error::InvalidParameter(_))
            ));
        }
    }

    #[test]
    fn require_names_the_first_missing_table() {
        let have = TableSet::of(&[Table::Beta, Table::EpsCoef]);
        assert_eq!(have.require(TableSet::of(&[Table::EpsCoef])), Ok(()));
        assert_eq!(have.require(TableSet::EMPTY), Ok(()));
        assert_eq!(
            have.require(TableSet::of(&[
                Table::SigmaLarge,
                Table::AlphaBar,
                Table::Beta
            ])),
            Err(Error::MissingTable(Table::AlphaBar.name()))
        );
        assert_eq!(TableSet::ALL.require(TableSet::ALL), Ok(()));
    }
}
