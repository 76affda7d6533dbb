// Front-end choice and Fuse3's option mapping (no mount needed).

import assert from 'node:assert/strict'
import { test } from 'node:test'
import { MOUNT_OPTIONS } from '../../../src/agent/frontend/fuse-native'
import { fuse3Available } from '../../../src/agent/frontend/fuse3'
import { nativeConfig } from '../../../src/agent/frontend/fuse3-options'
import { parseFrontend, pickFrontend } from '../../../src/agent/frontend/index'
import { VstorError } from '../../../src/errors'

test('fuse3 options: libfuse-2-only options are mapped or dropped, max_read always reaches the kernel', () => {
  const { config, options } = nativeConfig({ options: [...MOUNT_OPTIONS, 'auto_unmount', 'default_permissions'] })
  assert.deepEqual(options, ['fsname=vstor', 'subtype=vstor', 'allow_other', 'default_permissions', 'max_read=1048576'])
  assert.equal(config.maxWrite, 1048576)
  assert.equal(config.maxRead, 1048576)
  assert.equal(config.directIo, true)
  assert.equal(config.entryTimeout, 0)
  assert.equal(config.asyncDio, true)
  assert.equal(config.cloneFd, true)

  const small = nativeConfig({ options: ['max_read=131072,attr_timeout=1.5', 'ro'], maxBackground: 16 })
  assert.deepEqual(small.options, ['ro', 'max_read=131072'])
  assert.equal(small.config.maxRead, 131072)
  assert.equal(small.config.attrTimeout, 1.5)
  assert.equal(small.config.maxBackground, 16)
  assert.throws(() => nativeConfig({ options: ['max_write=lots'] }), /bad mount option value/)
})

test('front end: --fuse is checked; the default is libfuse3 when it is built', () => {
  assert.equal(parseFrontend('libfuse3'), 'libfuse3')
  assert.equal(parseFrontend('fuse-native'), 'fuse-native')
  assert.throws(
    () => parseFrontend('fuse2'),
    (e: unknown) => e instanceof VstorError && e.code === 'BAD_ARGUMENT',
  )
  assert.equal(pickFrontend('fuse-native'), 'fuse-native')
  if (fuse3Available()) {
    assert.equal(pickFrontend(), 'libfuse3')
    assert.equal(pickFrontend('libfuse3'), 'libfuse3')
  } else {
    if (process.env.CI) assert.fail('native/fuse3 is not built (bin/setup builds it); under CI this is a failure')
    assert.equal(pickFrontend(), 'fuse-native')
    assert.throws(() => pickFrontend('libfuse3'), /not built/)
  }
})
