import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { makeCertificates } from './helpers/certs.js';
import { cleanUp } from './helpers/cleanup.js';
import { codeBlocks, codeLines, commandText, documented, documentedSoFar } from './helpers/doc-lines.js';
import { type Namespace, type NamespaceProcess, startNamespace } from './helpers/namespace.js';
import { startPebbleIn } from './helpers/pebble.js';
import { until } from './helpers/wait.js';

/**
 * The commands of README.md and docs/ run as written, with their fixed ports and host names: each
 * scenario runs in a network namespace of its own, where tunnels.example.com and the rest resolve to
 * its loopback. docs-commands.test.ts checks that every command parses; this runs them.
 */

/** Runs a one-shot command in `ns`; its stdout when it exits 0. */
async function succeeds(ns: Namespace, command: string): Promise<string> {
  const { code, stdout, output } = await ns.run(command);
  assert.equal(code, 0, `${command}\n${output}`);
  return stdout;
}

/** A web app on 127.0.0.1:3000, as the docs assume, answering "app <path>". */
function startApp(ns: Namespace): Promise<RegExpMatchArray> {
  const code =
    "require('http').createServer((q, r) => r.end('app ' + q.url)).listen(3000, '127.0.0.1', () => console.log('app up'))";
  return ns.start(`${process.execPath} -e "${code}"`).line(/^app up$/);
}

describe('the README tour, run as written', () => {
  let ns: Namespace;
  const readme = (text: string, values?: Record<string, string>) => documented('README.md', text, values);
  const ok = (command: string) => succeeds(ns, command);

  before(async () => {
    ns = await startNamespace(['tunnels.example.com', 'proxy.corp']);
    await startApp(ns);
    await ns
      .start('redis-server --port 6379 --bind 127.0.0.1 --save "" --appendonly no')
      .line(/Ready to accept/);
  });
  after(() => ns?.close());

  test('1. expose 3000 with the relay in-process; curl; the inspector on 4040; postern replay', async () => {
    const expose = ns.start(readme('postern expose 3000'));
    try {
      const [, url] = (await expose.line(
        /^Forwarding (http:\/\/\S+\.localhost:\d+\/) -> http:\/\/127\.0\.0\.1:3000$/,
      )) as string[];
      await expose.line(/^Inspector {2}http:\/\/127\.0\.0\.1:4040$/);
      const { hostname, port } = new URL(url as string);
      const label = hostname.replace(/\.localhost$/, '');
      assert.equal(await ok(readme('curl http://<label>.localhost:<port>/', { label, port })), 'app /');
      const list = JSON.parse(await ok('curl -s http://127.0.0.1:4040/api/requests'));
      const id = list.captures[0].id as string;
      assert.match(await ok(`postern replay ${id}`), /200/);
    } finally {
      await expose.stop('SIGINT');
    }
  });

  test('2. a relay of its own; an agent dialling it; the path form on the relay name; through a proxy to https', async () => {
    const relay = ns.start(readme('postern relay --listen tcp://0.0.0.0:8080 --domain tunnels.example.com'));
    let expose: NamespaceProcess | undefined;
    try {
      await relay.line(/^postern relay listening on tcp:\/\/0\.0\.0\.0:8080/);
      expose = ns.start(
        readme('postern expose http://127.0.0.1:3000 --relay tcp://tunnels.example.com:8080'),
      );
      const [, label] = (await expose.line(
        /^Forwarding http:\/\/(\w+)\.tunnels\.example\.com:8080\/ -> http:\/\/127\.0\.0\.1:3000$/,
      )) as string[];
      assert.equal(
        await ok(readme('curl http://tunnels.example.com:8080/<label>/', { label: label as string })),
        'app /',
      );
    } finally {
      await cleanUp(
        () => expose?.stop('SIGINT'),
        () => relay.stop(),
      );
    }

    // https://tunnels.example.com: a relay with a certificate for that name on 443 (trusted by the
    // agent through NODE_EXTRA_CA_CERTS), behind tinyproxy on proxy.corp:3128 asking for user:pass.
    const certs = makeCertificates(['tunnels.example.com', '*.tunnels.example.com']);
    const tlsRelay = ns.start(
      `postern relay --listen tcps://0.0.0.0:443 --domain tunnels.example.com --tls-cert ${certs.cert} --tls-key ${certs.key}`,
    );
    writeFileSync(
      join(ns.dir, 'tinyproxy.conf'),
      [
        'Port 3128',
        'Listen 127.0.0.1',
        'BasicAuth user pass',
        'ConnectPort 443',
        'Allow 127.0.0.1',
        'LogLevel Error',
      ]
        .concat(process.getuid?.() === 0 ? ['User nobody', 'Group nogroup'] : [])
        .join('\n'),
    );
    const proxy = ns.start(`tinyproxy -d -c ${join(ns.dir, 'tinyproxy.conf')}`);
    let proxied: NamespaceProcess | undefined;
    try {
      await tlsRelay.line(/^postern relay listening on tcps:\/\/0\.0\.0\.0:443/);
      // No wait for tinyproxy: the agent retries until the proxy answers.
      proxied = ns.start(
        readme(
          'postern expose http://127.0.0.1:3000 --relay https://tunnels.example.com --proxy http://user:pass@proxy.corp:3128',
        ),
        { NODE_EXTRA_CA_CERTS: certs.ca },
      );
      const [, label] = (await proxied.line(
        /^Forwarding https:\/\/(\w+)\.tunnels\.example\.com\/ -> http:\/\/127\.0\.0\.1:3000$/,
      )) as string[];
      assert.equal(await ok(`curl -s --cacert ${certs.ca} https://tunnels.example.com/${label}/`), 'app /');
    } finally {
      await cleanUp(
        () => proxied?.stop('SIGINT'),
        () => tlsRelay.stop(),
        () => proxy.stop(),
      );
    }
  });

  test('3. a TCP service (Redis) reached through postern connect --listen; redis-cli PING', async () => {
    const relay = ns.start(readme('postern relay --listen tcp://0.0.0.0:8080 --domain tunnels.example.com'));
    let expose: NamespaceProcess | undefined;
    let connect: NamespaceProcess | undefined;
    try {
      await relay.line(/^postern relay listening/);
      expose = ns.start(
        readme('postern expose tcp://127.0.0.1:6379 --name redis --relay tcp://tunnels.example.com:8080'),
      );
      const [, label] = (await expose.line(
        /^Forwarding tcp:\/\/(\w+)\.tunnels\.example\.com:8080\?http_preflight=true -> tcp:\/\/127\.0\.0\.1:6379$/,
      )) as string[];
      ns.addHost(`${label}.tunnels.example.com`);
      connect = ns.start(
        readme(
          "postern connect 'tcp://<label>.tunnels.example.com:8080?http_preflight=true' --listen tcp://127.0.0.1:6380",
          { label: label as string },
        ),
      );
      await connect.line(/^postern connect: listening on tcp:\/\/127\.0\.0\.1:6380/);
      assert.equal((await ok(readme('redis-cli -p 6380 PING'))).trim(), 'PONG');
    } finally {
      await cleanUp(
        () => connect?.stop(),
        () => expose?.stop('SIGINT'),
        () => relay.stop(),
      );
    }
  });

  test('4. a relay for listed keys only, metrics on 9090, visitor rules; 5. --json', async () => {
    const label = (await ok(readme('postern id'))).trim();
    assert.match(label, /^[a-z2-7]{52}$/);
    await ok(readme("echo '<label> names=web,api' >> allowed-keys", { label }));
    const relay = ns.start(
      readme(
        'postern relay --listen tcp://0.0.0.0:8080 --domain tunnels.example.com --allowed-keys allowed-keys',
      ),
    );
    let expose: NamespaceProcess | undefined;
    try {
      await relay.line(/^admin \(metrics, health\) on http:\/\/127\.0\.0\.1:9090\//);
      assert.match(await ok(readme('curl http://127.0.0.1:9090/metrics')), /^postern_sessions 0$/m);
      writeFileSync(join(ns.dir, 'visitors'), 'alice:a long visitor password\n');
      expose = ns.start(
        readme(
          'postern expose web=3000 --relay tcp://tunnels.example.com:8080 --basic-auth-file ./visitors --allow-ip 203.0.113.0/24',
        ),
      );
      const [, web] = (await expose.line(
        /^Forwarding http:\/\/(\w+)\.tunnels\.example\.com:8080\/ -> http:\/\/127\.0\.0\.1:3000 \(visitors need: basic, ip\)$/,
      )) as string[];
      // This visitor (127.0.0.1) is outside 203.0.113.0/24: refused before anything reaches the agent.
      const refused = await ok(
        `curl -s -o /dev/null -w '%{http_code}' -u 'alice:a long visitor password' http://tunnels.example.com:8080/${web}/`,
      );
      assert.equal(refused, '403');
    } finally {
      await cleanUp(
        () => expose?.stop('SIGINT'),
        () => relay.stop(),
      );
    }

    const json = ns.start(readme('postern expose http://127.0.0.1:3000 --json'));
    try {
      const [line] = (await json.line(/^\{"event":"ready".*\}$/)) as string[];
      const ready = JSON.parse(line as string);
      assert.equal(ready.inspector, 'http://127.0.0.1:4040');
      assert.deepEqual(
        ready.services.map((s: { name: string; kind: string }) => [s.name, s.kind]),
        [['default', 'http']],
      );
    } finally {
      await json.stop('SIGINT');
    }
  });
});

describe('docs/deploy-nginx.md and docs/client.md, run as written behind nginx', () => {
  let ns: Namespace;
  const guide = (text: string, values?: Record<string, string>) =>
    documented('docs/deploy-nginx.md', text, values);
  const ok = (command: string) => succeeds(ns, command);

  before(async () => {
    ns = await startNamespace(['tunnels.example.com', 'www.example.com']);
    await startApp(ns);
    await ns
      .start('redis-server --port 6379 --bind 127.0.0.1 --save "" --appendonly no')
      .line(/Ready to accept/);
    // The guide's two nginx blocks as they are: the relay's own site on port 80, and an existing
    // site (www.example.com) with the relay under /tunnel/ ("the same proxy_* lines as above").
    const [site, subPath] = codeBlocks('docs/deploy-nginx.md', 'nginx') as [string, string];
    const proxyLines = site
      .split('\n')
      .filter((line) => /^\s*(proxy_(?!pass)|client_max_body_size)/.test(line))
      .join('\n');
    assert.ok(proxyLines.includes('proxy_set_header Upgrade'), 'the guide still lists its proxy_* lines');
    const config = [
      process.getuid?.() === 0 ? 'user root;' : '',
      `pid ${ns.dir}/nginx.pid;`,
      `error_log ${ns.dir}/nginx-error.log;`,
      'events {}',
      'http {',
      '  access_log off;',
      site,
      '  server {',
      '    listen 80;',
      '    server_name www.example.com;',
      "    location / { return 200 'the existing site'; }",
      subPath.replace(/^.*# … the same proxy_\* lines as above ….*$/m, proxyLines),
      '  }',
      '}',
    ].join('\n');
    writeFileSync(join(ns.dir, 'nginx.conf'), config);
    ns.start(`nginx -p ${ns.dir} -c ${ns.dir}/nginx.conf -g 'daemon off;'`);
  });
  after(() => ns?.close());

  test('the relay behind nginx; an HTTP tunnel; postern connect to a TCP one, as a port and on stdin/stdout', async () => {
    const relay = ns.start(
      guide(
        'postern relay --listen tcp://127.0.0.1:8080 --domain tunnels.example.com --trusted-proxy 127.0.0.1 --public-url https://tunnels.example.com',
      ),
    );
    const started: NamespaceProcess[] = [];
    try {
      await relay.line(/^postern relay listening/);
      const expose = ns.start(
        guide('postern expose http://127.0.0.1:3000 --relay tcp://tunnels.example.com:80'),
      );
      started.push(expose);
      // Agents are told the URL visitors use (--public-url); TLS would be nginx's, this nginx is plain.
      const [, label] = (await expose.line(
        /^Forwarding https:\/\/(\w+)\.tunnels\.example\.com\/ -> http:\/\/127\.0\.0\.1:3000$/,
      )) as string[];
      ns.addHost(`${label}.tunnels.example.com`);
      assert.equal(await ok(`curl -s http://${label}.tunnels.example.com/hello`), 'app /hello');

      const redis = ns.start(
        'postern expose tcp://127.0.0.1:6379 --name redis --relay tcp://tunnels.example.com:80 --no-inspect',
      );
      started.push(redis);
      const [, tcpLabel] = (await redis.line(
        /^Forwarding tcps:\/\/(\w+)\.tunnels\.example\.com:443\?http_preflight=true/,
      )) as string[];
      ns.addHost(`${tcpLabel}.tunnels.example.com`);
      const values = { label: tcpLabel as string };
      const client = (text: string) => documented('docs/client.md', text, values);
      const connect = ns.start(
        client(
          "postern connect 'tcp://<label>.tunnels.example.com:80?http_preflight=true' --listen tcp://127.0.0.1:6380",
        ),
      );
      started.push(connect);
      await connect.line(/^postern connect: listening/);
      assert.equal((await ok(client('redis-cli -p 6380 PING'))).trim(), 'PONG');
      // The ProxyCommand of the ssh line, on stdin/stdout: the reply arrives although stdin ends first.
      const ssh = client(
        `ssh -o ProxyCommand="postern connect 'tcp://<label>.tunnels.example.com:80?http_preflight=true'" user@host`,
      );
      const proxyCommand = (ssh.match(/ProxyCommand="([^"]+)"/) as string[])[1] as string;
      // (It then waits for the server to close or fall silent, --idle-timeout: stopped once answered.)
      const piped = ns.start(proxyCommand);
      started.push(piped);
      piped.child.stdin.end('PING\r\n');
      await piped.line(/^\+PONG$/);
    } finally {
      // Clients first: an agent asked to stop lets open streams finish (up to its drain timeout).
      await cleanUp(...started.reverse().map((p) => () => p.stop('SIGINT')), () => relay.stop());
    }
  });

  test('under a sub-path of an existing site', async () => {
    const relay = ns.start(
      guide('postern relay --listen tcp://127.0.0.1:8080 --base-path /tunnel --trusted-proxy 127.0.0.1'),
    );
    let expose: NamespaceProcess | undefined;
    try {
      await relay.line(/^postern relay listening/);
      expose = ns.start(
        guide('postern expose http://127.0.0.1:3000 --relay tcp://www.example.com:80/tunnel'),
      );
      const [, label] = (await expose.line(
        /^Forwarding http:\/\/(\w+)\.localhost\S*\/ -> http:\/\/127\.0\.0\.1:3000$/,
      )) as string[];
      assert.equal(
        await ok(guide('curl http://www.example.com/tunnel/<label>/', { label: label as string })),
        'app /',
      );
      assert.equal(await ok('curl -s http://www.example.com/'), 'the existing site');
    } finally {
      await cleanUp(
        () => expose?.stop('SIGINT'),
        () => relay.stop(),
      );
    }
  });
});

describe('docs/inspector.md and docs/security.md, run as written', () => {
  let ns: Namespace;
  const ok = (command: string) => succeeds(ns, command);

  before(async () => {
    // Visitors from inside and outside the allowed 10.0.0.0/8, and from its denied 10.9.0.0/16.
    ns = await startNamespace([], ['10.1.2.3', '10.9.0.1']);
    await startApp(ns);
  });
  after(() => ns?.close());

  test('the inspector on 4040 by default, on --inspect, and none with --no-inspect', async () => {
    const inspector = (text: string) => documented('docs/inspector.md', text);
    for (const [command, address] of [
      ['postern expose http://127.0.0.1:3000', '127.0.0.1:4040'],
      ['postern expose http://127.0.0.1:3000 --inspect 127.0.0.1:5050', '127.0.0.1:5050'],
      ['postern expose http://127.0.0.1:3000 --no-inspect', undefined],
    ] as const) {
      const expose = ns.start(inspector(command));
      try {
        await expose.line(/^Forwarding /);
        if (address === undefined) {
          const { code } = await ns.run('curl -s http://127.0.0.1:4040/api/requests');
          assert.equal(code, 7, 'curl: nothing listens on 4040');
          assert.doesNotMatch(expose.output(), /Inspector/);
        } else {
          await expose.line(new RegExp(`^Inspector {2}http://${address.replace(/\./g, '\\.')}$`));
          assert.match(await ok(`curl -s http://${address}/api/requests`), /"captures"/);
        }
      } finally {
        await expose.stop('SIGINT');
      }
    }
  });

  test('visitor rules: denied and unlisted addresses 403, a missing header 403, no credentials 401, then through', async () => {
    const etc = join(ns.dir, 'etc-postern');
    await ok(`mkdir ${etc}`);
    writeFileSync(join(etc, 'visitors'), 'alice:a long visitor password\n');
    writeFileSync(join(etc, 'ci-token'), 'a-ci-token-of-32-characters-----\n');
    const command = documented(
      'docs/security.md',
      "postern expose http://127.0.0.1:3000 --basic-auth-file /etc/postern/visitors --bearer-token-file /etc/postern/ci-token --require-header 'X-Team: blue' --allow-ip 10.0.0.0/8 --allow-ip 2001:db8::/32 --deny-ip 10.9.0.0/16",
    ).replaceAll('/etc/postern/', `${etc}/`);
    const expose = ns.start(command);
    try {
      const [, url] = (await expose.line(
        /^Forwarding (\S+) -> http:\/\/127\.0\.0\.1:3000 \(visitors need: basic, bearer, header, ip\)$/,
      )) as string[];
      // The in-process relay listens on 127.0.0.1; the visitors' own addresses are the 10.x ones.
      const { hostname, port } = new URL(url as string);
      const visit = async (from: string, ...args: string[]) =>
        ok(
          `curl -s -o /dev/null -w '%{http_code}' --interface ${from} --connect-to ${hostname}:${port}:127.0.0.1:${port} ${args.join(' ')} ${url}`,
        );
      assert.equal(await visit('127.0.0.1', "-H 'X-Team: blue'"), '403', 'not in 10.0.0.0/8');
      assert.equal(await visit('10.9.0.1', "-H 'X-Team: blue'"), '403', 'in the denied 10.9.0.0/16');
      assert.equal(await visit('10.1.2.3'), '403', 'no X-Team header');
      assert.equal(await visit('10.1.2.3', "-H 'X-Team: blue'"), '401', 'no credentials');
      assert.equal(await visit('10.1.2.3', "-H 'X-Team: blue'", "-u 'alice:a long visitor password'"), '200');
      assert.equal(
        await visit(
          '10.1.2.3',
          "-H 'X-Team: blue'",
          "-H 'Authorization: Bearer a-ci-token-of-32-characters-----'",
        ),
        '200',
      );
    } finally {
      await expose.stop('SIGINT');
    }
  });
});

describe('docs/cluster.md, run as written: three nodes on three hosts and one Redis', () => {
  /** The LAN: Redis (redis.internal), the app, the agent and the visitor, at 10.0.0.1. */
  let lan: Namespace;
  const nodes: Namespace[] = [];

  before(async () => {
    lan = await startNamespace([]);
    for (const [i, address] of ['10.0.0.11', '10.0.0.12', '10.0.0.13'].entries()) {
      const node = await startNamespace([]);
      nodes[i] = node;
      node.addHost('redis.internal', '10.0.0.1');
      await lan.link(node, `${address}/24`);
    }
    await startApp(lan);
    await lan
      .start('redis-server --port 6379 --bind 10.0.0.1 --protected-mode no --save "" --appendonly no')
      .line(/Ready to accept/);
  });
  after(() => cleanUp(...nodes.map((node) => () => node.close()), () => lan?.close()));

  test('an agent on node-a (or node-b) serves a visitor who reached node-c', async () => {
    const page = 'docs/cluster.md';
    const secret = documented(
      page,
      "export POSTERN_CLUSTER_SECRET='a long random secret, 16 characters or more'",
    );
    const env = { POSTERN_CLUSTER_SECRET: (secret.match(/'(.+)'/) as string[])[1] as string };
    const relays = ['a', 'b', 'c'].map((name, i) =>
      (nodes[i] as Namespace).start(
        documented(
          page,
          `postern relay --listen tcp://0.0.0.0:8080 --domain tunnels.example.com --redis redis://redis.internal:6379 --node-id node-${name} --advertise tcp://10.0.0.1${i + 1}:8080`,
        ),
        env,
      ),
    );
    let expose: NamespaceProcess | undefined;
    try {
      for (const relay of relays) await relay.line(/^postern relay listening on tcp:\/\/0\.0\.0\.0:8080/);
      expose = lan.start(
        documented(
          page,
          'postern expose http://127.0.0.1:3000 --relay tcp://10.0.0.11:8080 --relay tcp://10.0.0.12:8080',
        ),
      );
      const [, label] = (await expose.line(
        /^Forwarding http:\/\/(\w+)\.tunnels\.example\.com:8080\/ -> http:\/\/127\.0\.0\.1:3000$/,
      )) as string[];
      lan.addHost(`${label}.tunnels.example.com`, '10.0.0.13');
      // node-c holds no session of this agent: it finds the tunnel's node in Redis and forwards.
      let answer = '';
      await until(async () => {
        answer = (await lan.run(`curl -s http://${label}.tunnels.example.com:8080/from-c`)).stdout;
        return answer === 'app /from-c';
      }, `node-c to forward (last answer: ${answer})`);
    } finally {
      await cleanUp(() => expose?.stop('SIGINT'), ...relays.map((relay) => () => relay.stop()));
    }
  });
});

describe('docs/cli.md: the completion lines, as a shell start-up file would run them', () => {
  let ns: Namespace;
  before(async () => {
    ns = await startNamespace([]);
  });
  after(() => ns?.close());

  test('bash, zsh and fish complete "postern exp" to expose after sourcing the documented line', async () => {
    const cli = (text: string) => documented('docs/cli.md', text);
    const reply = `echo "\${COMPREPLY[@]}"`;
    const shells = [
      [
        'bash',
        cli('source <(postern completion bash)'),
        `COMP_WORDS=(postern exp); COMP_CWORD=1; _postern; ${reply}`,
      ],
      [
        'zsh',
        cli('source <(postern completion zsh)'),
        `t() { emulate -L sh; COMP_WORDS=(postern exp); COMP_CWORD=1; _postern; ${reply}; }; t`,
      ],
      ['fish', cli('postern completion fish | source'), "complete -C 'postern exp'"],
    ];
    for (const [shell, line, ask] of shells) {
      const { code, stdout, output } = await ns.run(
        `${shell} -c '${`${line}; ${ask}`.replaceAll("'", "'\\''")}'`,
      );
      assert.equal(code, 0, output);
      assert.match(stdout, /^expose\b/m, `${shell}: ${output}`);
    }
  });
});

describe('docs/deploy-public.md, run as written (pebble for Let’s Encrypt, /etc/postern and /var/lib/postern in scratch folders)', () => {
  let ns: Namespace;
  const page = 'docs/deploy-public.md';
  let etc: string;
  let state: string;
  /** The page's command with /etc/postern/ and /var/lib/postern in the scratch folder. */
  const guide = (text: string, values?: Record<string, string>) =>
    documented(page, text, values).replaceAll('/etc/postern/', `${etc}/`);
  const ok = (command: string) => succeeds(ns, command);
  let pebble: Awaited<ReturnType<typeof startPebbleIn>> | undefined;

  before(async () => {
    ns = await startNamespace(['tunnels.example.com']);
    etc = join(ns.dir, 'etc-postern');
    state = join(ns.dir, 'var-lib-postern');
    await startApp(ns);
    pebble = await startPebbleIn(ns);
  });
  after(async () => {
    await pebble?.stop();
    await ns?.close();
  });

  test('the configuration checks; the relay orders its certificates; a listed agent publishes; a visitor verifies', async () => {
    mkdirSync(etc);
    const [yaml] = codeBlocks(page, 'yaml') as [string];
    writeFileSync(
      join(etc, 'postern.yaml'),
      yaml.replaceAll('/etc/postern/', `${etc}/`).replaceAll('/var/lib/postern', state),
    );
    await ok(guide('touch /etc/postern/allowed-keys'));
    assert.match(await ok(guide('postern config check /etc/postern/postern.yaml')), /ok/);

    const ca = pebble as NonNullable<typeof pebble>;
    const relay = ns.start(guide('postern relay --config /etc/postern/postern.yaml'), {
      POSTERN_ACME_DIRECTORY: ca.directory,
      POSTERN_ACME_CA_FILE: ca.caFile,
    });
    let expose: NamespaceProcess | undefined;
    let passthrough: NamespaceProcess | undefined;
    try {
      await relay.line(
        /^postern relay listening on tcp:\/\/0\.0\.0\.0:80, tcps:\/\/0\.0\.0\.0:443 \(tunnels at <label>\.tunnels\.example\.com\)$/,
      );
      const root = await ca.issuedRoot();
      await ok(guide('postern keygen'));
      const label = (await ok(guide('postern id'))).trim();
      await ok(guide("echo '<label>' >> /etc/postern/allowed-keys", { label }));
      // systemctl reload postern-relay is the unit's ExecReload: SIGHUP.
      documented(page, 'systemctl reload postern-relay');
      relay.child.kill('SIGHUP');
      await relay.line(/^postern relay: reloaded allowed keys \(1 from /);
      expose = ns.start(
        guide('postern expose http://127.0.0.1:3000 --relay tcps://tunnels.example.com:443'),
        {
          NODE_EXTRA_CA_CERTS: root,
        },
      );
      await expose.line(
        new RegExp(`^Forwarding https://${label}\\.tunnels\\.example\\.com/ -> http://127\\.0\\.0\\.1:3000$`),
        30_000,
      );
      ns.addHost(`${label}.tunnels.example.com`);
      assert.equal(await ok(`curl -s --cacert ${root} https://${label}.tunnels.example.com/`), 'app /');
      assert.equal(
        await ok(
          `curl -s -o /dev/null -w '%{http_code} %{redirect_url}' http://${label}.tunnels.example.com/x`,
        ),
        `308 https://${label}.tunnels.example.com/x`,
      );
      const kept = readdirSync(join(state, 'acme'));
      assert.equal(kept.length, 1, 'one CA folder in the state directory');

      // docs/tls-passthrough.md on the same relay: a TLS server of its own on 8443, never decrypted.
      const own = makeCertificates(['*.tunnels.example.com']);
      const server = `require('https').createServer({cert: require('fs').readFileSync('${own.cert}'), key: require('fs').readFileSync('${own.key}')}, (q, r) => r.end('secure ' + q.url)).listen(8443, '127.0.0.1', () => console.log('tls up'))`;
      await ns.start(`${process.execPath} -e "${server}"`).line(/^tls up$/);
      passthrough = ns.start(
        documented(
          'docs/tls-passthrough.md',
          'postern expose tls://127.0.0.1:8443 --name secure --relay tcps://tunnels.example.com:443',
        ),
        { NODE_EXTRA_CA_CERTS: root },
      );
      const [, secure] = (await passthrough.line(
        /^Forwarding https:\/\/(\w+)\.tunnels\.example\.com\/ -> tls:\/\/127\.0\.0\.1:8443$/,
        30_000,
      )) as string[];
      ns.addHost(`${secure}.tunnels.example.com`);
      assert.equal(
        await ok(`curl -s --cacert ${own.ca} https://${secure}.tunnels.example.com/x`),
        'secure /x',
      );

      // The same agent again with a name of its own: its certificate is ordered on the first visit.
      await expose.stop('SIGINT');
      expose = ns.start(
        guide(
          'postern expose http://127.0.0.1:3000 --subdomain myapp --relay tcps://tunnels.example.com:443',
        ),
        { NODE_EXTRA_CA_CERTS: root },
      );
      await expose.line(
        /^Forwarding https:\/\/myapp\.tunnels\.example\.com\/ -> http:\/\/127\.0\.0\.1:3000$/,
        30_000,
      );
      ns.addHost('myapp.tunnels.example.com');
      assert.equal(await ok(`curl -s --cacert ${root} https://myapp.tunnels.example.com/y`), 'app /y');
    } finally {
      await cleanUp(
        () => passthrough?.stop('SIGINT'),
        () => expose?.stop('SIGINT'),
        () => relay.stop(),
      );
    }
  });
});

describe('docs/acme.md, run as written (pebble for Let’s Encrypt)', () => {
  let ns: Namespace;
  let pebble: Awaited<ReturnType<typeof startPebbleIn>> | undefined;
  before(async () => {
    ns = await startNamespace(['tunnels.example.com']);
    await startApp(ns);
    pebble = await startPebbleIn(ns);
  });
  after(async () => {
    await pebble?.stop();
    await ns?.close();
  });

  test('the relay line orders the domain’s certificate at start and serves it on 443', async () => {
    const ca = pebble as NonNullable<typeof pebble>;
    const state = join(ns.dir, 'state');
    const relay = ns.start(
      documented(
        'docs/acme.md',
        'postern relay --listen tcp://0.0.0.0:80 --listen tcps://0.0.0.0:443 --domain tunnels.example.com --acme-email ops@example.com --state-dir /var/lib/postern',
      ).replace('/var/lib/postern', state),
      { POSTERN_ACME_DIRECTORY: ca.directory, POSTERN_ACME_CA_FILE: ca.caFile },
    );
    try {
      await relay.line(/^postern relay listening on tcp:\/\/0\.0\.0\.0:80, tcps:\/\/0\.0\.0\.0:443/);
      const root = await ca.issuedRoot();
      await until(
        async () =>
          (await ns.run(`curl -s --cacert ${root} -o /dev/null https://tunnels.example.com/`)).code === 0,
        'the domain served with a certificate pebble issued',
        30_000,
      );
    } finally {
      await relay.stop();
    }
  });
});

test('every postern command in the code blocks of README.md and docs/ ran above', () => {
  const pages = [
    'README.md',
    ...readdirSync(join(import.meta.dirname, '..', '..', 'docs'))
      .filter((f) => f.endsWith('.md'))
      .map((f) => `docs/${f}`),
  ];
  const all = pages.flatMap((page) =>
    codeLines(page)
      .filter(({ text }) => /^postern [a-z-]+( |$)/.test(text))
      .map(({ line, text }) => ({ line, key: `${page}: ${commandText(text)}` })),
  );
  const notRun = all
    .filter(({ key }) => !documentedSoFar().has(key))
    .map(({ line, key }) => `${key} (line ${line})`);
  assert.deepEqual(notRun, []);
  assert.ok(all.length >= 20, `${all.length} commands found`);
});
