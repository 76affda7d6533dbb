// The core end-to-end suites (foundation, states, thin, outage) run once per FUSE front end:
// libfuse3 (the default, native/fuse3) and fuse-native (libfuse 2, the fallback), from one file
// each. Invariant: an instance made for a front end mounts only with `--fuse <front end>`, so a
// test never runs on the default by accident. VSTOR_E2E_FUSE=libfuse3 (or fuse-native) keeps one.

import test, { type TestContext } from 'node:test'
import { vstorInstance, type Instance } from '../helpers/instance'

export type FrontendName = 'libfuse3' | 'fuse-native'
const ALL: FrontendName[] = ['libfuse3', 'fuse-native']

/** The front ends the core suites run on. */
export function frontends(): FrontendName[] {
  const only = process.env.VSTOR_E2E_FUSE
  return only ? ALL.filter((f) => only.split(',').includes(f)) : ALL
}

/** A vstor instance whose mount() always adds --fuse fe. */
export async function instanceOn(t: TestContext, fe: FrontendName): Promise<Instance> {
  const v = await vstorInstance(t)
  const mount = v.mount.bind(v)
  v.mount = (extra = []) => mount([...extra, '--fuse', fe])
  return v
}

/** One test per front end: `name [libfuse3]`, `name [fuse-native]`. */
export function testOnFrontends(name: string, fn: (t: TestContext, v: () => Promise<Instance>, fe: FrontendName) => Promise<void>): void {
  for (const fe of frontends()) test(`${name} [${fe}]`, (t) => fn(t, () => instanceOn(t, fe), fe))
}
