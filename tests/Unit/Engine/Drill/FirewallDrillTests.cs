using System.Net;
using System.Net.Sockets;
using OllamaContinuity.Alerts;
using OllamaContinuity.Contingency;
using OllamaContinuity.Drill;
using OllamaContinuity.Failover;
using OllamaContinuity.Native;
using OllamaContinuity.Tests.Failover;
using OllamaContinuity.TestSupport;

namespace OllamaContinuity.Tests.Drill;

/// <summary>
/// The drill with a real outbound firewall block, inside network namespaces: the client (engine sockets, Ollama
/// fake, webhook listener, firewall tools) in one, the fake cloud in another, joined by a veth pair. Every packet
/// starts inside the client namespace; the host's firewall is compared before and after.
/// </summary>
public sealed class FirewallDrillTests
{
    [SkippableTheory]
    [InlineData(OutboundFirewall.Nftables, false)]
    [InlineData(OutboundFirewall.Iptables, false)]
    [InlineData(OutboundFirewall.Nftables, true)]
    public async Task Firewall_drill_blocks_the_cloud_for_real_and_removes_the_block(OutboundFirewall firewall, bool cancelMidway)
    {
        Require.Root();
        Require.Tool(firewall == OutboundFirewall.Nftables ? "nft" : "iptables");
        var before = HostFirewallSnapshot.Take();
        var dir = TestPaths.New("fwdrill-tests");
        var n = 200 + Random.Shared.Next(0, 50);
        using (var client = NetNs.Create("dc"))
        using (var cloudNs = NetNs.Create("dk"))
        {
            NetNs.Link(client, [$"10.{n}.7.1/24"], cloudNs, [$"10.{n}.7.2/24"]);
            var cloudIp = IPAddress.Parse($"10.{n}.7.2");
            await using var cloud = cloudNs.Run(() => FakeAiServer.Start(FakeApi.OpenAI, "cloud", cloudIp));
            await using var ollama = client.Run(() => FakeAiServer.Start(FakeApi.Ollama, "ollama"));
            await using var hook = client.Run(() => WebhookListener.Start());
            Assert.True(client.CanConnect(cloudIp, cloud.Port));

            using var engine = new FailoverEngine(new FailoverEngineOptions
            {
                Circuit = DrillTests.QuickCircuit,
                SocketFactory = () => client.Run(() => new Socket(SocketType.Stream, ProtocolType.Tcp)),
            });
            var settings = new AlertSettings { WebhookUri = hook.Uri, SystemLog = false };
            var alerts = new AlertDispatcher(TimeProvider.System, () => settings, engine.HttpPool.CreateClient, null, () => Path.Combine(dir, "alerts.jsonl"));
            ContinuityRuntime.Attach(engine, null, null, alerts);
            var runner = new ProcessCommandRunner { Prefix = ["ip", "netns", "exec", client.Name] };
            var marker = Path.Combine(dir, "drill-block.json");
            var options = new DrillOptions
            {
                Plan = Harness.Plan(Harness.Cloud(cloud), Path.Combine(dir, "requests.jsonl"), Harness.Ollama(ollama)),
                BlockMethod = DrillBlockMethod.Firewall,
                Firewall = firewall,
                Duration = TimeSpan.FromSeconds(cancelMidway ? 60 : 2.5),
                Interval = TimeSpan.FromMilliseconds(300),
                RecoveryTimeout = TimeSpan.FromSeconds(15),
                AlertTimeout = TimeSpan.FromSeconds(5),
                Runner = runner,
                MarkerPath = marker,
            };
            using var cts = new CancellationTokenSource();
            bool? blockedDuring = null;
            string? rulesDuring = null;

            var report = await new FailoverDrill(engine, alerts, () => settings).RunAsync(options, new SyncProgress<DrillProgress>(p =>
            {
                if (p.Phase == "Failover" && blockedDuring is null)
                {
                    blockedDuring = !client.CanConnect(cloudIp, cloud.Port, TimeSpan.FromSeconds(1));
                    rulesDuring = firewall == OutboundFirewall.Nftables ? client.Exec("nft", "list", "ruleset").Output : client.Exec("iptables", "-S").Output;
                    if (cancelMidway)
                    {
                        cts.CancelAfter(700);
                    }
                }
            }), cts.Token);

            Assert.True(blockedDuring, "the cloud was reachable during the block");
            Assert.Contains(firewall == OutboundFirewall.Nftables ? "ollamacontinuity_drill" : "OC_DRILL", rulesDuring);
            Assert.Equal("Passed", report.Steps.Single(s => s.Name == "Unblock").Outcome);
            Assert.DoesNotContain("ollamacontinuity_drill", client.Exec("nft", "list", "ruleset").Output);
            Assert.DoesNotContain("OC_DRILL", client.Exec("iptables", "-S").Output);
            Assert.True(client.CanConnect(cloudIp, cloud.Port), "the cloud is still blocked after the drill");
            Assert.False(File.Exists(marker));
            if (cancelMidway)
            {
                Assert.Equal("Aborted", report.Outcome);
            }
            else
            {
                Assert.True(report.Outcome == "Passed", string.Join("\n", report.Failures));
                Assert.Equal(firewall.ToString(), report.Firewall);
                Assert.Equal([cloudIp.ToString()], report.BlockedAddresses);
                Assert.All(report.Probes.Where(p => p.Phase == "Failover"), p => Assert.Equal("Ollama", p.Backend));
                Assert.Contains(report.Alerts, a => a.Kind == ContinuityEventKind.CircuitOpened && a.Succeeded);
                Assert.NotNull(report.TimeToRecoverSeconds);
                Assert.Equal(3, cloud.Hits); // preflight, the probe that closed the circuit, the recovery prompt
            }
        }

        try { Directory.Delete(dir, true); } catch (IOException) { }
        Assert.Equal(before, HostFirewallSnapshot.Take());
    }
}
