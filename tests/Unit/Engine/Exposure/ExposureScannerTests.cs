using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using OllamaContinuity.Exposure;
using OllamaContinuity.TestSupport;

namespace OllamaContinuity.Tests.Exposure;

/// <summary>The network probe against fake servers on real sockets: on loopback addresses, and across namespaces.</summary>
public sealed class ExposureScannerTests(Xunit.Abstractions.ITestOutputHelper output)
{
    /// <summary>A port free on every loopback address used below (bound once on 127.0.0.2 to find one).</summary>
    private static int FreePort()
    {
        var l = new TcpListener(IPAddress.Parse("127.0.0.2"), 0);
        l.Start();
        var port = ((IPEndPoint)l.LocalEndpoint).Port;
        l.Stop();
        return port;
    }

    [Fact]
    public async Task The_summary_line_gives_each_fate_and_the_scan_rate()
    {
        // Issue 10, item 9: "report the scan rate". 127.0.0.0/29 on a free port: every address refuses at once.
        var port = FreePort();
        var log = new List<string>();
        var options = new ExposureScanOptions { Port = port, Timeout = TimeSpan.FromSeconds(2), Log = l => { lock (log) { log.Add(l); } } };
        var targets = (await ScanTargets.ExpandAsync(["127.0.0.0/29"], false, TimeSpan.FromSeconds(1))).Targets;
        await ExposureScanner.ScanAsync(targets, options);
        output.WriteLine(log[^1]);
        var m = System.Text.RegularExpressions.Regex.Match(log[^1],
            @"^Fates: 0 Ollama, 0 open without Ollama, 6 refused and 0 unreachable \(ended at once\), 0 silent \(waited the 2000 ms timeout\); 6 address\(es\) in (\d+\.\d{3}) s: (\d+) addresses/s\.$");
        Assert.True(m.Success, log[^1]);
        Assert.True(int.Parse(m.Groups[2].Value, System.Globalization.CultureInfo.InvariantCulture) > 0, log[^1]);
    }

    [Fact]
    public async Task Loopback_scan_reports_Ollama_with_leaked_models_and_not_the_other_server()
    {
        var port = FreePort();
        await using var ollama = FakeAiServer.Start(FakeApi.Ollama, address: IPAddress.Parse("127.0.0.2"), port: port);
        ollama.Tags = ["llama3.1:8b", "qwen2.5-coder:32b"];
        await using var other = FakeAiServer.Start(FakeApi.OpenAI, address: IPAddress.Parse("127.0.0.3"), port: port);
        var targets = (await ScanTargets.ExpandAsync(["127.0.0.0/29"], false, TimeSpan.FromSeconds(1))).Targets;
        var progress = new List<int>();

        var findings = await ExposureScanner.ScanAsync(targets, new ExposureScanOptions { Port = port, Timeout = TimeSpan.FromSeconds(1) }, (done, _) => { lock (progress) { progress.Add(done); } });

        var f = Assert.Single(findings);
        Assert.Equal((ExposureChecks.NetworkExposure, ExposureStatus.Fail, "127.0.0.2", port), (f.Check, f.Status, f.Target, f.Port));
        Assert.Equal("0.33.0", f.Version);
        Assert.Equal("llama3.1:8b, qwen2.5-coder:32b", f.Models);
        Assert.Equal(2, f.ModelCount);
        Assert.Contains("without authentication", f.Detail, StringComparison.Ordinal);
        Assert.Equal(ExposureScanner.ExposedRemediation, f.Remediation);
        Assert.Equal(targets.Count, progress.Count);
        Assert.Equal(targets.Count, progress.Max());
    }

    [Fact]
    public async Task IncludeClosed_gives_a_Pass_row_per_address_saying_why()
    {
        var port = FreePort();
        await using var other = FakeAiServer.Start(FakeApi.OpenAI, address: IPAddress.Parse("127.0.0.3"), port: port);
        var targets = (await ScanTargets.ExpandAsync(["127.0.0.2", "127.0.0.3"], false, TimeSpan.FromSeconds(1))).Targets;

        var findings = await ExposureScanner.ScanAsync(targets, new ExposureScanOptions { Port = port, Timeout = TimeSpan.FromSeconds(1), IncludeClosed = true });

        Assert.Equal(2, findings.Count);
        Assert.All(findings, f => Assert.Equal(ExposureStatus.Pass, f.Status));
        Assert.Contains("connection refused", findings.Single(f => f.Target == "127.0.0.2").Detail, StringComparison.Ordinal);
        Assert.Contains("HTTP 404", findings.Single(f => f.Target == "127.0.0.3").Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_server_that_accepts_but_never_answers_is_bounded_by_the_timeout_and_not_Ollama()
    {
        using var silent = new TcpListener(IPAddress.Loopback, 0);
        silent.Start(); // accepts into the backlog, never reads or writes
        var port = ((IPEndPoint)silent.LocalEndpoint).Port;
        var sw = Stopwatch.StartNew();
        var p = await ExposureScanner.ProbeAsync(IPAddress.Loopback, port, TimeSpan.FromMilliseconds(500), null, CancellationToken.None);
        sw.Stop();
        Assert.True(p.Open);
        Assert.False(p.IsOllama);
        Assert.Contains("no HTTP answer", p.Problem, StringComparison.Ordinal);
        Assert.InRange(sw.Elapsed, TimeSpan.Zero, TimeSpan.FromSeconds(2));
    }

    [Fact]
    public async Task Refused_addresses_end_at_once_so_a_range_with_one_Ollama_finishes_well_under_the_timeout()
    {
        // 127.0.0.8/29: six loopback addresses that all exist; one holds an Ollama, the others refuse (RST).
        var port = FreePort();
        await using var ollama = FakeAiServer.Start(FakeApi.Ollama, address: IPAddress.Parse("127.0.0.10"), port: port);
        var targets = (await ScanTargets.ExpandAsync(["127.0.0.8/29"], false, TimeSpan.FromSeconds(1))).Targets;
        var timeout = TimeSpan.FromSeconds(3);
        var options = new ExposureScanOptions { Port = port, Timeout = timeout, IncludeClosed = true };
        await ExposureScanner.ProbeAsync(IPAddress.Parse("127.0.0.9"), port, timeout, null, CancellationToken.None); // warm up (JIT), untimed

        var sw = Stopwatch.StartNew();
        var findings = await ExposureScanner.ScanAsync(targets, options);
        sw.Stop();

        Assert.Equal(6, findings.Count);
        Assert.Equal(("127.0.0.10", ExposureStatus.Fail), (findings.Single(f => f.Status != ExposureStatus.Pass).Target, findings.Single(f => f.Status != ExposureStatus.Pass).Status));
        Assert.All(findings.Where(f => f.Status == ExposureStatus.Pass), f => Assert.Contains("connection refused", f.Detail, StringComparison.Ordinal));
        Assert.True(sw.Elapsed < timeout / 2, $"6 addresses (5 refusing) took {sw.Elapsed.TotalMilliseconds:0} ms with a {timeout.TotalMilliseconds:0} ms timeout");
    }

    [SkippableFact]
    public async Task Addresses_a_router_answers_unreachable_end_at_once_and_only_a_silent_address_waits_for_the_timeout()
    {
        Require.Root();
        Require.Tool("ip");
        // scanner 10.245.1.2/29 -- router 10.245.1.1/29 | 10.245.2.1/29 -- server 10.245.2.2 (Ollama), 10.245.2.3 (no listener).
        // The router holds an unreachable route for 10.245.2.4/30, so it answers ICMP host unreachable for .4-.6 at once.
        using var scanner = NetNs.Create("ucli");
        using var router = NetNs.Create("urtr");
        using var server = NetNs.Create("usrv");
        NetNs.Link(scanner, ["10.245.1.2/29"], router, ["10.245.1.1/29"]);
        NetNs.Link(router, ["10.245.2.1/29"], server, ["10.245.2.2/29", "10.245.2.3/29"]);
        Assert.Equal(0, router.Exec("sysctl", "-qw", "net.ipv4.ip_forward=1").ExitCode);
        Assert.Equal(0, router.Exec("ip", "route", "add", "unreachable", "10.245.2.4/30").ExitCode);
        // ICMP errors are rate-limited per destination (a shared token bucket of about 2-3 back-to-back messages): lift
        // this namespace's own limit so all three answers arrive (a real router may drop some, which then time out).
        Assert.Equal(0, router.Exec("sysctl", "-qw", "net.ipv4.icmp_ratelimit=0").ExitCode);
        Assert.Equal(0, scanner.Exec("ip", "route", "add", "default", "via", "10.245.1.1").ExitCode);
        Assert.Equal(0, server.Exec("ip", "route", "add", "default", "via", "10.245.2.1").ExitCode);
        await using var ollama = server.Run(() => FakeAiServer.Start(FakeApi.Ollama, address: IPAddress.Parse("10.245.2.2"), port: 11434));
        Assert.True(scanner.CanConnect(IPAddress.Parse("10.245.2.2"), 11434)); // the route works

        var timeout = TimeSpan.FromSeconds(3);
        var log = new List<string>();
        var options = new ExposureScanOptions { Port = 11434, Timeout = timeout, IncludeClosed = true, SocketFactory = scanner.CreateSocket, Log = l => { lock (log) { log.Add(l); } } };
        var targets = (await ScanTargets.ExpandAsync(["10.245.2.0/29"], false, TimeSpan.FromSeconds(1))).Targets;
        var sw = Stopwatch.StartNew();
        var findings = await ExposureScanner.ScanAsync(targets, options);
        sw.Stop();
        output.WriteLine(string.Join(Environment.NewLine, findings.Select(f => $"{f.Target}: {f.Status} {f.Detail}")));

        Assert.Equal(ExposureStatus.Fail, findings.Single(f => f.Target == "10.245.2.2").Status);
        Assert.Contains("connection refused", findings.Single(f => f.Target == "10.245.2.3").Detail, StringComparison.Ordinal);
        Assert.All(findings.Where(f => f.Target is "10.245.2.4" or "10.245.2.5" or "10.245.2.6"), f => Assert.Contains("host unreachable", f.Detail, StringComparison.Ordinal));
        output.WriteLine(string.Join(Environment.NewLine, log));
        Assert.Matches(@"^Fates: 1 Ollama, 0 open without Ollama, 2 refused and 3 unreachable \(ended at once\), 0 silent \(waited the 3000 ms timeout\); 6 address\(es\) in \d+\.\d{3} s: \d+ addresses/s\.$", log[^1]);
        Assert.True(sw.Elapsed < timeout / 2, $"a /29 that answers everywhere took {sw.Elapsed.TotalMilliseconds:0} ms with a {timeout.TotalMilliseconds:0} ms timeout");

        // A silent address (on the scanner's link, nobody answers ARP) waits for the timeout, and says so.
        var silent = await ExposureScanner.ProbeAsync(IPAddress.Parse("10.245.1.5"), 11434, TimeSpan.FromMilliseconds(500), scanner.CreateSocket, CancellationToken.None);
        Assert.Equal((false, "no answer within 500 ms"), (silent.Open, silent.Problem));
    }

    [SkippableFact]
    public async Task Subnet_scan_across_namespaces_finds_exposed_Ollama_hosts_within_twice_the_timeout()
    {
        Require.Root();
        Require.Tool("ip");
        using var server = NetNs.Create("xsrv");
        using var scanner = NetNs.Create("xcli");
        // One veth; the server holds several addresses on it. Everything else in the /24 is silent (ARP gets no answer).
        NetNs.Link(server, ["10.244.7.1/24", "10.244.7.10/24", "10.244.7.11/24", "10.244.7.12/24", "10.244.7.13/24", "fd44::1/120", "fd44::10/120"],
            scanner, ["10.244.7.200/24", "fd44::c8/120"]);
        var models = new Dictionary<string, string[]>
        {
            ["10.244.7.10"] = ["llama3.1:8b", "mistral:7b"],
            ["10.244.7.11"] = ["qwen2.5:72b"],
            ["fd44::10"] = ["phi4:14b"],
        };
        var servers = new List<FakeAiServer>();
        try
        {
            foreach (var (address, tags) in models)
            {
                var s = server.Run(() => FakeAiServer.Start(FakeApi.Ollama, address: IPAddress.Parse(address), port: 11434));
                s.Tags = tags;
                servers.Add(s);
            }

            // Something else on the Ollama port: an HTTP server without the banner (GET answers 404).
            servers.Add(server.Run(() => FakeAiServer.Start(FakeApi.OpenAI, address: IPAddress.Parse("10.244.7.12"), port: 11434)));
            Assert.True(scanner.CanConnect(IPAddress.Parse("10.244.7.10"), 11434)); // the link works

            var timeout = TimeSpan.FromMilliseconds(1000);
            var options = new ExposureScanOptions { Port = 11434, Timeout = timeout, ThrottleLimit = 256, SocketFactory = scanner.CreateSocket };
            var targets = (await ScanTargets.ExpandAsync(["10.244.7.0/24"], false, TimeSpan.FromSeconds(1))).Targets;
            Assert.True((await ExposureScanner.ProbeAsync(IPAddress.Parse("10.244.7.10"), 11434, timeout, scanner.CreateSocket, CancellationToken.None)).IsOllama); // warm up (JIT), untimed
            var sw = Stopwatch.StartNew();
            var findings = await ExposureScanner.ScanAsync(targets, options);
            sw.Stop();
            output.WriteLine($"/24 scan: {targets.Count} addresses in {sw.Elapsed.TotalMilliseconds:0} ms (timeout {timeout.TotalMilliseconds:0} ms)");

            Assert.Equal(["10.244.7.10", "10.244.7.11"], findings.Select(f => f.Target));
            Assert.All(findings, f => Assert.Equal(ExposureStatus.Fail, f.Status));
            Assert.Equal("llama3.1:8b, mistral:7b", findings[0].Models);
            Assert.Equal("qwen2.5:72b", findings[1].Models);
            Assert.DoesNotContain(findings, f => f.Target == "10.244.7.12"); // no false positive for the non-Ollama server
            Assert.True(sw.Elapsed < timeout * 2, $"a /24 with 252 silent addresses took {sw.Elapsed.TotalMilliseconds:0} ms with a {timeout.TotalMilliseconds:0} ms timeout");

            // The same scan with -IncludeClosed: a row per address, the non-Ollama server named as such.
            var all = await ExposureScanner.ScanAsync(targets, options with { IncludeClosed = true });
            Assert.Equal(254, all.Count);
            Assert.Contains("HTTP 404", all.Single(f => f.Target == "10.244.7.12").Detail, StringComparison.Ordinal);
            Assert.Contains("does not answer", all.Single(f => f.Target == "10.244.7.99").Detail, StringComparison.Ordinal);
            Assert.Contains("connection refused", all.Single(f => f.Target == "10.244.7.13").Detail, StringComparison.Ordinal);

            // IPv6: a /120 with one Ollama host.
            var p6 = await ExposureScanner.ProbeAsync(IPAddress.Parse("fd44::10"), 11434, timeout, scanner.CreateSocket, CancellationToken.None);
            Assert.True(p6.IsOllama, p6.ToString());
            var v6 = await ExposureScanner.ScanAsync((await ScanTargets.ExpandAsync(["fd44::/120"], false, TimeSpan.FromSeconds(1))).Targets, options);
            var f6 = Assert.Single(v6);
            Assert.Equal(("fd44::10", "phi4:14b"), (f6.Target, f6.Models));
        }
        finally
        {
            foreach (var s in servers)
            {
                await s.DisposeAsync();
            }
        }
    }
}
