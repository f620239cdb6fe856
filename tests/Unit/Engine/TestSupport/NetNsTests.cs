using System.Net;
using System.Net.Sockets;
using OllamaContinuity.TestSupport;

namespace OllamaContinuity.Tests.TestSupport;

public sealed class NetNsTests
{
    [SkippableFact]
    public async Task Sockets_created_in_a_namespace_talk_over_its_veth_link_only()
    {
        Require.Root();
        using var server = NetNs.Create("srv");
        using var client = NetNs.Create("cli");
        NetNs.Link(server, ["10.231.0.1/24", "fd31::1/64"], client, ["10.231.0.2/24", "fd31::2/64"]);
        await using var fake = server.Run(() => FakeAiServer.Start(FakeApi.Ollama, address: IPAddress.IPv6Any, port: 11434));

        Assert.True(client.CanConnect(IPAddress.Parse("10.231.0.1"), 11434));
        Assert.True(client.CanConnect(IPAddress.Parse("fd31::1"), 11434));
        Assert.False(client.CanConnect(IPAddress.Parse("10.231.0.1"), 11435, TimeSpan.FromMilliseconds(500)));
    }
}
