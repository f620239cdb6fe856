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
