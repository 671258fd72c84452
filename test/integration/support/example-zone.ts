/** The zone every cluster test serves (YAML, at the top level of a site's config): example.com, SOA and NS only. */
export const EXAMPLE_ZONE_YAML = `zones:
  - name: example.com
    records:
      - "@ 3600 IN SOA ns1 hostmaster 1 3600 600 86400 60"
      - "@ NS ns1"
      - "ns1 A 192.0.2.53"`;
