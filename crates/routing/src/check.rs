//! The router's invariants, checked from scratch over the whole state: property tests call
//! [`Router::check_invariants`] after every input, and hosts may in debug builds.

use std::collections::{BTreeMap, BTreeSet};

use crate::model::WorkId;
use crate::router::{Pool, Router, Stage, TimerKind};

impl Router {
    /// Checks every invariant; `Err` names the first one broken.
    ///
    /// * an agent's load is exactly the units of the work offered or assigned to it, and never
    ///   exceeds its capacity;
    /// * a work item is in exactly one place: one backlog (waiting), one agent (offered,
    ///   assigned, wrap-up), or only the timer wheel (scheduled callback);
    /// * every offer, assignment, wrap-up and scheduled callback has a pending deadline, and no
    ///   timer is overdue (every state has an exit);
    /// * a waiting work item in a pool nobody staffs, with somewhere to overflow to, is due to
    ///   overflow no later than `overflow_after_ms` after the pool lost its last agent (or after
    ///   it arrived);
    /// * pool staffing counts and membership match the agents.
    pub fn check_invariants(&self) -> Result<(), String> {
        let now = self.now;
        let mut held: BTreeMap<&crate::AgentId, (u32, BTreeSet<&WorkId>)> = BTreeMap::new();
        let mut waiting = 0usize;
        for (id, w) in &self.works {
            let pool = Pool::of(&w.spec.target);
            let in_backlogs = self.pools.values().filter(|p| p.backlog.values().any(|x| x == id)).count();
            let has = |kind: TimerKind| {
                w.timers.iter().any(|(t, k)| *k == kind && self.timers.contains(&(*t, id.clone(), *k)))
            };
            match &w.stage {
                Stage::Waiting => {
                    waiting += 1;
                    let ps = self.pools.get(&pool).ok_or(format!("{id}: waiting in a missing pool"))?;
                    if ps.backlog.get(&w.key) != Some(id) || in_backlogs != 1 {
                        return Err(format!(
                            "{id}: waiting but in {in_backlogs} backlogs / not under its key"
                        ));
                    }
                    if !ps.in_queue.contains(&(w.pool_since, id.clone())) {
                        return Err(format!("{id}: waiting but not counted in queue"));
                    }
                    if let (Some(at), false) = (self.overflow_deadline(id), has(TimerKind::Overflow)) {
                        return Err(format!("{id}: overflow due at {at} but no timer"));
                    }
                    let unstaffed = ps.staffed == 0;
                    if unstaffed && !matches!(pool, Pool::Agent(_)) && self.destination(id).is_some() {
                        let since = ps.unstaffed_since.unwrap_or(0).max(w.pool_since);
                        if since.saturating_add(self.config.overflow_after_ms) <= now {
                            return Err(format!("{id}: still waiting in an unstaffed pool past overflow"));
                        }
                    }
                }
                Stage::Offered { agent, expires_at } => {
                    if *expires_at <= now || !has(TimerKind::Stage) {
                        return Err(format!("{id}: offer without a pending expiry"));
                    }
                    if in_backlogs != 0 {
                        return Err(format!("{id}: offered and waiting"));
                    }
                    let ps = self.pools.get(&pool).ok_or(format!("{id}: offered from a missing pool"))?;
                    if !ps.in_queue.contains(&(w.pool_since, id.clone())) {
                        return Err(format!("{id}: offered but not counted in queue"));
                    }
                    let e = held.entry(agent).or_default();
                    e.0 += w.spec.units;
                    e.1.insert(id);
                }
                Stage::Assigned { agent, .. } | Stage::WrapUp { agent, .. } => {
                    if in_backlogs != 0 || !has(TimerKind::Stage) {
                        return Err(format!("{id}: assigned but waiting, or without a deadline"));
                    }
                    let e = held.entry(agent).or_default();
                    e.0 += w.spec.units;
                    e.1.insert(id);
                }
                Stage::CallbackScheduled { .. } => {
                    if in_backlogs != 0 || !has(TimerKind::Stage) {
                        return Err(format!("{id}: scheduled callback waiting, or without a due time"));
                    }
                }
                Stage::Detached => return Err(format!("{id}: left detached")),
            }
        }
        let backlog_total: usize = self.pools.values().map(|p| p.backlog.len()).sum();
        if backlog_total != waiting {
            return Err(format!("{backlog_total} backlog entries for {waiting} waiting work items"));
        }
        let counted: usize = self.pools.values().map(|p| p.in_queue.len()).sum();
        let queued =
            self.works.values().filter(|w| matches!(w.stage, Stage::Waiting | Stage::Offered { .. })).count();
        if counted != queued {
            return Err(format!("{counted} in-queue entries for {queued} queued or offered work items"));
        }
        if let Some((t, w, _)) = self.timers.first() {
            if *t <= now {
                return Err(format!("timer of {w} at {t} is overdue at {now}"));
            }
        }
        for (t, w, k) in &self.timers {
            if !self.works.get(w).is_some_and(|x| x.timers.contains(&(*t, *k))) {
                return Err(format!("stray timer of {w} at {t}"));
            }
        }
        for (id, a) in &self.agents {
            let (load, works) = held.remove(id).unwrap_or_default();
            if a.load != load || a.works.iter().collect::<BTreeSet<_>>() != works {
                return Err(format!(
                    "{id}: load {} / {} works, but holds {load} / {}",
                    a.load,
                    a.works.len(),
                    works.len()
                ));
            }
            if a.load > a.spec.capacity {
                return Err(format!("{id}: load {} over capacity {}", a.load, a.spec.capacity));
            }
        }
        if let Some((agent, _)) = held.into_iter().next() {
            return Err(format!("work held by unknown agent {agent}"));
        }
        for (pool, ps) in &self.pools {
            let members: Vec<_> = self.agents.values().filter(|a| a.pools().contains(pool)).collect();
            let staffed = members.iter().filter(|a| self.routable(a)).count();
            if ps.members.len() != members.len() || ps.staffed as usize != staffed {
                return Err(format!("{pool:?}: membership or staffing out of date"));
            }
            if (ps.staffed == 0) != ps.unstaffed_since.is_some() {
                return Err(format!("{pool:?}: unstaffed clock out of date"));
            }
        }
        Ok(())
    }
}
