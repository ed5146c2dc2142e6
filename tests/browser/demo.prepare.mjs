// Builds the relay binary that tests/browser/demo.test.mjs starts (outside the network
// namespace, in case a crate still has to be fetched).
import { buildRelay } from './harness.mjs';

buildRelay();
