//! Indices into a plan: a task's (`TaskIx`) and a vertex's (`VertexIx`), typed so that one is
//! never taken for the other, and a vector indexed by one (`IndexVec`). This is the one place
//! where they become `usize`.

use std::marker::PhantomData;
use std::ops::{Index, IndexMut};

/// An index that a `u32` holds (a plan never has 4 billion tasks) and a `usize` reads.
pub trait Idx: Copy {
    fn new(index: usize) -> Self;
    fn index(self) -> usize;
}

macro_rules! index_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(u32);

        impl Idx for $name {
            fn new(index: usize) -> Self {
                $name(u32::try_from(index).expect("a plan holds fewer than 2^32 tasks"))
            }

            fn index(self) -> usize {
                self.0 as usize
            }
        }
    };
}

index_type!(
    /// A task of a plan: an index into `Plan::tasks`.
    TaskIx
);
index_type!(
    /// A vertex of a plan: an index into `Plan::vertices`.
    VertexIx
);

/// A vector indexed by `I` only.
pub struct IndexVec<I, T> {
    raw: Vec<T>,
    index: PhantomData<fn(I)>,
}

impl<I: Idx, T> IndexVec<I, T> {
    pub fn with_capacity(capacity: usize) -> Self {
        IndexVec { raw: Vec::with_capacity(capacity), index: PhantomData }
    }

    /// `n` copies of `value`.
    pub fn filled(value: T, n: usize) -> Self
    where
        T: Clone,
    {
        IndexVec { raw: vec![value; n], index: PhantomData }
    }

    /// Adds `value` and returns its index.
    pub fn push(&mut self, value: T) -> I {
        self.raw.push(value);
        I::new(self.raw.len() - 1)
    }

    pub fn len(&self) -> usize {
        self.raw.len()
    }

    /// The index the next `push` returns.
    pub fn next_index(&self) -> I {
        I::new(self.raw.len())
    }

    pub fn iter_mut(&mut self) -> std::slice::IterMut<'_, T> {
        self.raw.iter_mut()
    }

    pub fn iter(&self) -> std::slice::Iter<'_, T> {
        self.raw.iter()
    }

    pub fn indices(&self) -> std::iter::Map<std::ops::Range<usize>, fn(usize) -> I> {
        (0..self.raw.len()).map(I::new)
    }

    pub fn iter_enumerated(&self) -> impl Iterator<Item = (I, &T)> + '_ {
        self.raw.iter().enumerate().map(|(i, t)| (I::new(i), t))
    }
}

impl<I: Idx, T> FromIterator<T> for IndexVec<I, T> {
    fn from_iter<It: IntoIterator<Item = T>>(iter: It) -> Self {
        IndexVec { raw: iter.into_iter().collect(), index: PhantomData }
    }
}

impl<I: Idx, T> Index<I> for IndexVec<I, T> {
    type Output = T;

    fn index(&self, index: I) -> &T {
        &self.raw[index.index()]
    }
}

impl<I: Idx, T> IndexMut<I> for IndexVec<I, T> {
    fn index_mut(&mut self, index: I) -> &mut T {
        &mut self.raw[index.index()]
    }
}
