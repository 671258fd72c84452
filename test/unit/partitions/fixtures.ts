/** The two-site example of docs/partitions.md (site a's file; site b's differs only in `site:`). */
export const TWO_SITES = `site: a
sites:
  - { name: a }
  - { name: b }
zones:
  - name: example.com
    records: ["@ 3600 IN SOA ns1 hostmaster 1 3600 600 86400 60", "@ 3600 IN NS ns1", "ns1 IN A 127.0.0.2"]
balanced:
  - { name: p1.example.com, policy: failover, addresses: { a: [127.0.0.2], b: [127.0.0.3] } }
  - { name: p2.example.com, policy: failover, addresses: { a: [127.0.0.2], b: [127.0.0.3] } }
partitions:
  load-balancers:
    a:
      listen: 127.0.0.2:8080
      stats-socket: /run/multisite/haproxy-a.sock
      agent: 127.0.0.2:5555
      servers:
        - { name: w1, address: 127.0.0.21:8080 }
        - { name: w2, address: 127.0.0.22:8080 }
    b:
      listen: 127.0.0.3:8080
      stats-socket: /run/multisite/haproxy-b.sock
      agent: 127.0.0.3:5555
      servers:
        - { name: w1, address: 127.0.0.31:8080 }
        - { name: w2, address: 127.0.0.32:8080 }
  list:
    - name: p1
      active: a
      hosts: [p1.example.com]
      path-prefixes: [/p1/]
      tenants: [t1]
      dns-name: p1.example.com
    - name: p2
      active: b
      hosts: [p2.example.com]
      path-prefixes: [/p2/]
      tenants: [t2]
      dns-name: p2.example.com
      failback: auto
`;
