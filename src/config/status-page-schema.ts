import { z } from 'zod';

/**
 * `status-page:` — the operator's page in a browser (docs/status-page.md), served on
 * `backend.metrics` (loopback unless that address says otherwise). Off unless this section is
 * present. Actions (drain/undrain) need an API key; without one the page is read-only.
 */
export const statusPageSchema = z
  .strictObject({
    /** false keeps the section in the file but serves nothing. */
    enabled: z.boolean().default(true),
    /** The actions' API key (at least 16 bytes of text), sent in a header or the form body, never a URL. */
    'api-key-file': z.string().min(1).optional(),
    'api-key-env': z.string().min(1).optional(),
    /** State changes kept for the Timeline section. */
    'timeline-size': z.number().int().min(1).max(1000).default(50),
    /** Changes within this window are pushed to open pages as one update. */
    'coalesce-ms': z.number().int().min(0).max(5000).default(100),
    /** Open pages at once (each holds one server-sent-events connection); more are refused with 503. */
    'max-clients': z.number().int().min(1).max(1000).default(32),
    /** Balanced names listed in Answers (the page stays small with 10,000 names; the rest are counted). */
    'max-names': z.number().int().min(1).max(5000).default(200),
  })
  .refine((p) => !(p['api-key-file'] && p['api-key-env']), 'give api-key-file or api-key-env, not both');
export type StatusPageConfig = z.infer<typeof statusPageSchema>;
