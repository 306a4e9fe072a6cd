using System.Globalization;
using System.Text;

namespace Engine.Chat.Jinja;

/// <summary>Python's datetime.strftime in the C locale, for strftime_now(fmt): English day and month names, %d %m %Y
/// and the other common directives. An unknown directive is copied as is, as glibc does.</summary>
internal static class Strftime
{
    public static string Format(DateTime t, string format)
    {
        var ic = CultureInfo.InvariantCulture;
        var sb = new StringBuilder();
        for (int i = 0; i < format.Length; i++)
        {
            char c = format[i];
            if (c != '%' || i + 1 >= format.Length) { sb.Append(c); continue; }
            char d = format[++i];
            // glibc's '-' flag (Linux) drops the zero padding: %-d, %-m, %-H ...
            bool noPad = d == '-' && i + 1 < format.Length;
            if (noPad) d = format[++i];
            string Num(int value, int width) => noPad ? value.ToString(ic) : value.ToString(new string('0', width), ic);
            sb.Append(d switch
            {
                'a' => t.ToString("ddd", ic),
                'A' => t.ToString("dddd", ic),
                'b' or 'h' => t.ToString("MMM", ic),
                'B' => t.ToString("MMMM", ic),
                'd' => Num(t.Day, 2),
                'e' => noPad ? t.Day.ToString(ic) : t.Day.ToString(ic).PadLeft(2),
                'm' => Num(t.Month, 2),
                'y' => Num(t.Year % 100, 2),
                'Y' => t.Year.ToString(ic),
                'H' => Num(t.Hour, 2),
                'I' => Num(t.Hour % 12 == 0 ? 12 : t.Hour % 12, 2),
                'M' => Num(t.Minute, 2),
                'S' => Num(t.Second, 2),
                'f' => (t.Ticks % TimeSpan.TicksPerSecond / 10).ToString("000000", ic),
                'p' => t.Hour < 12 ? "AM" : "PM",
                'j' => Num(t.DayOfYear, 3),
                'w' => ((int)t.DayOfWeek).ToString(ic),
                'u' => (t.DayOfWeek == DayOfWeek.Sunday ? 7 : (int)t.DayOfWeek).ToString(ic),
                'U' => Num((t.DayOfYear + 6 - (int)t.DayOfWeek) / 7, 2),
                'W' => Num((t.DayOfYear + 6 - ((int)t.DayOfWeek + 6) % 7) / 7, 2),
                'G' => ISOWeek.GetYear(t).ToString(ic),
                'V' => Num(ISOWeek.GetWeekOfYear(t), 2),
                'c' => t.ToString("ddd MMM ", ic) + t.Day.ToString(ic).PadLeft(2) + t.ToString(" HH:mm:ss yyyy", ic),
                'x' => t.ToString("MM/dd/yy", ic),
                'X' => t.ToString("HH:mm:ss", ic),
                'D' => t.ToString("MM/dd/yy", ic),
                'F' => t.ToString("yyyy-MM-dd", ic),
                'T' => t.ToString("HH:mm:ss", ic),
                'R' => t.ToString("HH:mm", ic),
                'n' => "\n",
                't' => "\t",
                '%' => "%",
                'z' or 'Z' => "",
                _ => "%" + (noPad ? "-" : "") + d,
            });
        }
        return sb.ToString();
    }
}
