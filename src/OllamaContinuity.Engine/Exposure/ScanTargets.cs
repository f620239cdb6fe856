using System.Net;
using System.Net.Sockets;
using System.Text.RegularExpressions;
using OllamaContinuity.Internal;

namespace OllamaContinuity.Exposure;

/// <summary>One address to probe, and what the caller wrote that produced it (a host name, CIDR or the address itself).</summary>
public sealed record ScanTarget(IPAddress Address, string Given)
{
    public override string ToString() => Address.ToString();
}

/// <summary>A target list that cannot be scanned; <see cref="ErrorId"/> is the cmdlet's ErrorId.</summary>
public sealed class ScanTargetException(string errorId, string message, string recommendedAction) : ArgumentException(message, "Target")
{
    public string ErrorId { get; } = errorId;

    public string RecommendedAction { get; } = recommendedAction;
}

/// <summary>Targets expanded to addresses, plus the names that did not resolve (reported as Error findings).</summary>
public sealed record ScanTargetList(IReadOnlyList<ScanTarget> Targets, IReadOnlyList<(string Given, string Problem)> Unresolved);

/// <summary>
/// Expands -Target entries (IP addresses, CIDRs, host names) into addresses, safely: at most
/// <see cref="DefaultMaxAddresses"/> addresses without -Force and never more than <see cref="HardMaxAddresses"/>,
/// so a typo such as 10.0.0.0/8 or ::/0 cannot start a scan of millions of hosts.
/// </summary>
public static partial class ScanTargets
{
    /// <summary>The most addresses scanned without -Force (a /20). </summary>
    public const int DefaultMaxAddresses = 4096;

    /// <summary>The most addresses scanned even with -Force (a /16).</summary>
    public const int HardMaxAddresses = 65536;

    /// <summary>Checks syntax and size without resolving names (for validation before anything runs); returns the address count of the literal entries.</summary>
    public static long Validate(IEnumerable<string> targets, bool force)
    {
        long total = 0;
        foreach (var raw in targets)
        {
            var t = raw?.Trim() ?? "";
            if (t.Length == 0)
            {
                throw new ScanTargetException("InvalidTarget", "A -Target entry is empty.", "Give host names, IP addresses or CIDRs such as 192.168.1.0/24.");
            }

            if (t.Contains('/'))
            {
                if (!TryNetwork(t, out var net, out var problem))
                {
                    throw new ScanTargetException("InvalidTarget", $"'{t}' is not a valid CIDR (for example 192.168.1.0/24 or fd00::/120): {problem}.",
                        "Write the network address with its prefix length, such as 10.0.5.0/24.");
                }

                var count = Count(net);
                if (net.PrefixLength == 0 || count > HardMaxAddresses)
                {
                    throw new ScanTargetException("TargetTooLarge", $"'{t}' holds {Describe(count)} addresses; the scanner refuses more than {HardMaxAddresses} in one run.",
                        "Scan the subnets where your Ollama hosts live (for example /24s), one run each.");
                }

                total += count;
            }
            else if (IsAddressText(t))
            {
                if (!IpText.TryParseAddress(t, out _, out var problem))
                {
                    throw new ScanTargetException("InvalidTarget", $"'{t}' is not a valid IP address: {problem}.",
                        "Write IPv4 addresses as four decimal numbers without leading zeros, such as 10.99.0.1.");
                }

                total += 1;
            }
            else if (!HostName().IsMatch(t))
            {
                throw new ScanTargetException("InvalidTarget", $"'{t}' is neither an IP address, a CIDR nor a host name.", "Give host names, IP addresses or CIDRs such as 192.168.1.0/24.");
            }
            else
            {
                total += 1;
            }
        }

        if (total > DefaultMaxAddresses && !force)
        {
            throw new ScanTargetException("TargetTooLarge", $"The targets hold {total} addresses; more than {DefaultMaxAddresses} needs -Force (at most {HardMaxAddresses}).",
                "Narrow the targets, or add -Force when you mean to scan that many addresses.");
        }

        if (total > HardMaxAddresses)
        {
            throw new ScanTargetException("TargetTooLarge", $"The targets hold {total} addresses; the scanner refuses more than {HardMaxAddresses} in one run.", "Split the scan into several runs.");
        }

        return total;
    }

    /// <summary>Validates, then expands CIDRs and resolves host names (each bounded by <paramref name="resolveTimeout"/>). Duplicates are removed.</summary>
    public static async Task<ScanTargetList> ExpandAsync(IReadOnlyList<string> targets, bool force, TimeSpan resolveTimeout,
        Func<string, CancellationToken, Task<IPAddress[]>>? resolver = null, CancellationToken cancellationToken = default)
    {
        Validate(targets, force);
        resolver ??= (name, ct) => Dns.GetHostAddressesAsync(name, ct);
        var seen = new HashSet<IPAddress>();
        var list = new List<ScanTarget>();
        var unresolved = new List<(string, string)>();
        foreach (var raw in targets)
        {
            var t = raw.Trim();
            if (t.Contains('/'))
            {
                TryNetwork(t, out var net, out _);
                foreach (var a in Enumerate(net))
                {
                    if (seen.Add(a))
                    {
                        list.Add(new ScanTarget(a, t));
                    }
                }
            }
            else if (IsAddressText(t) && IpText.TryParseAddress(t, out var ip, out _))
            {
                if (seen.Add(ip))
                {
                    list.Add(new ScanTarget(ip, t));
                }
            }
            else
            {
                try
                {
                    using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
                    cts.CancelAfter(resolveTimeout);
                    var addresses = await resolver(t, cts.Token).ConfigureAwait(false);
                    if (addresses.Length == 0)
                    {
                        unresolved.Add((t, "the name has no addresses"));
                    }

                    foreach (var a in addresses.Where(a => a.AddressFamily is AddressFamily.InterNetwork or AddressFamily.InterNetworkV6))
                    {
                        if (seen.Add(a))
                        {
                            list.Add(new ScanTarget(a, t));
                        }
                    }
                }
                catch (Exception e) when (e is SocketException or OperationCanceledException && !cancellationToken.IsCancellationRequested)
                {
                    unresolved.Add((t, e is OperationCanceledException ? $"name resolution took longer than {resolveTimeout.TotalMilliseconds:0} ms" : e.Message));
                }
            }
        }

        if (list.Count > HardMaxAddresses || (list.Count > DefaultMaxAddresses && !force))
        {
            throw new ScanTargetException("TargetTooLarge", $"The targets resolve to {list.Count} addresses; more than {DefaultMaxAddresses} needs -Force (at most {HardMaxAddresses}).",
                "Narrow the targets, or add -Force.");
        }

        return new ScanTargetList(list, unresolved);
    }

    /// <summary>The addresses of a network; for IPv4 networks larger than /31 the network and broadcast addresses are left out.</summary>
    public static IEnumerable<IPAddress> Enumerate(IPNetwork net)
    {
        var bytes = net.BaseAddress.GetAddressBytes();
        var first = ToUInt128(bytes);
        var count = Count(net);
        var skipEnds = bytes.Length == 4 && net.PrefixLength < 31;
        for (UInt128 i = 0; i < (UInt128)count; i++)
        {
            if (skipEnds && (i == 0 || i == (UInt128)count - 1))
            {
                continue;
            }

            yield return new IPAddress(FromUInt128(first + i, bytes.Length));
        }

    }

    /// <summary>Digits and dots only, or a colon: meant as an address (never resolved as a host name).</summary>
    private static bool IsAddressText(string t) => t.Contains(':') || IpText.LooksLikeIPv4(t);

    /// <summary>A CIDR through the module's strict parser; the address written must be the network's first address (10.0.0.0/24, not 10.0.0.5/24).</summary>
    private static bool TryNetwork(string text, out IPNetwork net, out string problem)
    {
        net = default;
        if (!IpText.TryParseNetwork(text, out var address, out var prefix, out problem))
        {
            return false;
        }

        var bytes = address.GetAddressBytes();
        for (var i = 0; i < bytes.Length; i++)
        {
            var keep = Math.Clamp(prefix - (i * 8), 0, 8);
            if ((bytes[i] & (byte)~(0xFF << (8 - keep))) != 0)
            {
                problem = "the address must be the network's first address (host bits are set after the prefix)";
                return false;
            }
        }

        net = new IPNetwork(address, prefix);
        return true;
    }

    private static long Count(IPNetwork net)
    {
        var hostBits = (net.BaseAddress.AddressFamily == AddressFamily.InterNetwork ? 32 : 128) - net.PrefixLength;
        return hostBits >= 62 ? long.MaxValue : 1L << hostBits;
    }

    private static string Describe(long count) => count == long.MaxValue ? "more than 2^62" : count.ToString(System.Globalization.CultureInfo.InvariantCulture);

    private static UInt128 ToUInt128(byte[] bytes)
    {
        UInt128 v = 0;
        foreach (var b in bytes)
        {
            v = (v << 8) | b;
        }

        return v;
    }

    private static byte[] FromUInt128(UInt128 v, int length)
    {
        var bytes = new byte[length];
        for (var i = length - 1; i >= 0; i--)
        {
            bytes[i] = (byte)(v & 0xFF);
            v >>= 8;
        }

        return bytes;
    }

    [GeneratedRegex(@"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$")]
    private static partial Regex HostName();
}
